"""altinn-receiver: receive Altinn Correspondence events durably."""

__version__ = "0.1.0"
