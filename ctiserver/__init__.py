"""ctiserver: an asyncio CTI server for utility customer-service hotlines on Asterisk."""

__version__ = "0.1.0"
