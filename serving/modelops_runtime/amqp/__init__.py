"""Asynchronous inference over AMQP (RabbitMQ quorum queues): the front door that takes a
request with `Prefer: respond-async`, and the runner that consumes a version's queue and
hands each message to the same data plane as HTTP and gRPC."""
