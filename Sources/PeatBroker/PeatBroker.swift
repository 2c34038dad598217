// PeatBroker: the HTTP/WebSocket broker API over a BrokerState protocol (DESIGN §8).
//
// This target exists so the module graph of the design is in place from the start; its
// implementation lands with its own issue. It intentionally declares nothing yet.
