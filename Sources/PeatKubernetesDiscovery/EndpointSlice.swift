public import Foundation
public import PeatDiscovery

/// The parts of a `discovery.k8s.io/v1` EndpointSlice that discovery uses; unknown fields are
/// ignored and every field may be absent (`endpoints: null` included).
public struct EndpointSlice: Decodable, Sendable, Equatable {
    public struct Metadata: Decodable, Sendable, Equatable {
        public var name: String?
        public var resourceVersion: String?
        public var labels: [String: String]?
        public var annotations: [String: String]?
    }

    public struct Conditions: Decodable, Sendable, Equatable {
        public var ready: Bool?
        public var serving: Bool?
        public var terminating: Bool?

        public init(ready: Bool? = nil, serving: Bool? = nil, terminating: Bool? = nil) {
            self.ready = ready
            self.serving = serving
            self.terminating = terminating
        }
    }

    public struct TargetRef: Decodable, Sendable, Equatable {
        public var kind: String?
        public var name: String?
        public var uid: String?
    }

    public struct Endpoint: Decodable, Sendable, Equatable {
        public var addresses: [String]?
        public var conditions: Conditions?
        public var hostname: String?
        public var targetRef: TargetRef?
        public var nodeName: String?
    }

    public struct Port: Decodable, Sendable, Equatable {
        public var name: String?
        public var port: Int?
        public var `protocol`: String?
    }

    public var metadata: Metadata?
    public var addressType: String?
    public var endpoints: [Endpoint]?
    public var ports: [Port]?

    /// Decodes one slice from JSON.
    public static func decode(_ data: Data) throws(DiscoveryError) -> EndpointSlice {
        do {
            return try JSONDecoder().decode(EndpointSlice.self, from: data)
        } catch {
            throw DiscoveryError(code: .malformedResponse, message: "not an EndpointSlice", cause: error)
        }
    }
}

/// Turns EndpointSlices into peers: a pure function, testable without a cluster.
public struct EndpointSlicePeers: Sendable {
    /// Annotations with this prefix become peer metadata (without it); `<prefix>relay_url` is the relay.
    public var annotationPrefix: String
    /// The port used when a slice has no port named `sync`.
    public var defaultSyncPort: Int
    /// This node's own ID, never reported as a peer.
    public var localNodeID: String?

    public init(annotationPrefix: String = "peat.", defaultSyncPort: Int = 11204, localNodeID: String? = nil) {
        self.annotationPrefix = annotationPrefix
        self.defaultSyncPort = defaultSyncPort
        self.localNodeID = localNodeID
    }

    /// Whether an endpoint may receive connections: serving (absent: ready; absent: true) and not
    /// terminating (absent: false). With `publishNotReadyAddresses`, `ready` is true even for
    /// terminating pods, so `serving` and `terminating` decide.
    public static func isEligible(_ conditions: EndpointSlice.Conditions?) -> Bool {
        let serving = conditions?.serving ?? conditions?.ready ?? true
        let terminating = conditions?.terminating ?? false
        return serving && !terminating
    }

    /// The peers of a set of slices, keyed by pod (`targetRef.name`), addresses merged across
    /// slices (a pod can be in two slices during updates, and in an IPv4 and an IPv6 slice).
    public func peers(from slices: [EndpointSlice]) -> [PeerInfo] {
        var byNode: [String: PeerInfo] = [:]
        for slice in slices {
            guard slice.addressType == "IPv4" || slice.addressType == "IPv6" else { continue }  // FQDN ignored
            let port = slice.ports?.first(where: { $0.name == "sync" })?.port ?? defaultSyncPort
            guard (1...65_535).contains(port) else { continue }
            var metadata: [String: String] = [:]
            var relay: String?
            for (key, value) in slice.metadata?.annotations ?? [:] where key.hasPrefix(annotationPrefix) {
                let name = String(key.dropFirst(annotationPrefix.count))
                if name == "relay_url" { relay = value } else { metadata[name] = value }
            }
            for endpoint in slice.endpoints ?? [] {
                guard Self.isEligible(endpoint.conditions),
                    let nodeID = endpoint.targetRef?.name ?? endpoint.hostname, !nodeID.isEmpty,
                    nodeID != localNodeID,
                    let address = endpoint.addresses?.first, !address.isEmpty
                else { continue }
                let endpointAddress = PeerEndpoint(host: address, port: port)
                if var existing = byNode[nodeID] {
                    existing.addresses = Array(Set(existing.addresses + [endpointAddress])).sorted()
                    existing.metadata.merge(metadata) { first, _ in first }
                    existing.relayURL = existing.relayURL ?? relay
                    byNode[nodeID] = existing
                } else {
                    byNode[nodeID] = PeerInfo(nodeID: nodeID, addresses: [endpointAddress], relayURL: relay, metadata: metadata, source: "kubernetes")
                }
            }
        }
        return byNode.keys.sorted().map { byNode[$0]! }
    }
}
