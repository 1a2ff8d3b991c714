from receiver.cli.main import main

# The name the console script has, so `python -m receiver` gives the same usage lines and completion variable.
main(prog_name="altinn-receiver")
