"""Commands, their handlers and the service both transports call."""
