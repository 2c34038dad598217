// PeatDiscovery: the DiscoveryStrategy seam: static, mDNS, Kubernetes and hybrid discovery (DESIGN §7).
//
// This target exists so the module graph of the design is in place from the start; its
// implementation lands with its own issue. It intentionally declares nothing yet.
