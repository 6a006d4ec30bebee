"""The edge: the HTTP endpoint every client talks to; any edge answers any request."""
