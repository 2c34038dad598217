// PeatStorage: the DocumentStore seam: an in-memory store and LMDBDocumentStore (DESIGN §6).
//
// This target exists so the module graph of the design is in place from the start; its
// implementation lands with its own issue. It intentionally declares nothing yet.
