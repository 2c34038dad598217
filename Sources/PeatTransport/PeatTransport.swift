// PeatTransport: the SyncTransport seam: mutually authenticated TLS 1.3 with formation proof (DESIGN §4).
//
// This target exists so the module graph of the design is in place from the start; its
// implementation lands with its own issue. It intentionally declares nothing yet.
