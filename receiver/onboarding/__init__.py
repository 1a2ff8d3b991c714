"""Getting an agency from zero to receiving events: keys, config templates, the resource policy, the guide's steps."""
