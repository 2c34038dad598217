public import ServiceLifecycle

/// Where to reach a peer's sync listener.
public struct PeerEndpoint: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port`, with an IPv6 literal in brackets.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    public static func < (lhs: PeerEndpoint, rhs: PeerEndpoint) -> Bool {
        (lhs.host, lhs.port) < (rhs.host, rhs.port)
    }
}

/// A discovered peer.
public struct PeerInfo: Hashable, Sendable {
    /// The peer's node ID (in Kubernetes, its pod name).
    public var nodeID: String
    /// Where it listens, sorted; several when it has several addresses or sources.
    public var addresses: [PeerEndpoint]
    /// A relay to reach it through, when it cannot be reached directly.
    public var relayURL: String?
    /// Extra information from the source (annotations, TXT records), without the prefix.
    public var metadata: [String: String]
    /// Which strategy reported it (`static`, `kubernetes`, `mdns`; joined for hybrid).
    public var source: String

    public init(nodeID: String, addresses: [PeerEndpoint], relayURL: String? = nil, metadata: [String: String] = [:], source: String) {
        self.nodeID = nodeID
        self.addresses = addresses.sorted()
        self.relayURL = relayURL
        self.metadata = metadata
        self.source = source
    }
}

/// What a discovery strategy reports.
public enum DiscoveryEvent: Hashable, Sendable {
    case peerFound(PeerInfo)
    case peerUpdated(PeerInfo)
    case peerLost(nodeID: String)
}

/// The discovery seam: a long-running service that reports peers appearing, changing and leaving.
///
/// `run()` discovers until graceful shutdown or cancellation; `events` delivers what it found
/// (iterate it from one task). Implementations: `StaticDiscovery`, `HybridDiscovery`, and the
/// Kubernetes and mDNS strategies.
public protocol DiscoveryStrategy: Service {
    /// A short name for logs and `PeerInfo.source`.
    var name: String { get }
    /// The discovered peers' events, in order.
    var events: AsyncStream<DiscoveryEvent> { get }
}

/// Turns successive snapshots of a source's peers into events.
public struct PeerSnapshotDiffer: Sendable {
    private(set) var current: [String: PeerInfo] = [:]

    public init() {}

    /// The events that take the last snapshot to `peers` (found, updated, lost — in node ID order).
    public mutating func update(to peers: [PeerInfo]) -> [DiscoveryEvent] {
        var next: [String: PeerInfo] = [:]
        for peer in peers { next[peer.nodeID] = peer }
        var events: [DiscoveryEvent] = []
        for nodeID in next.keys.sorted() {
            let peer = next[nodeID]!
            switch current[nodeID] {
            case nil: events.append(.peerFound(peer))
            case let old? where old != peer: events.append(.peerUpdated(peer))
            default: break
            }
        }
        for nodeID in current.keys.sorted() where next[nodeID] == nil {
            events.append(.peerLost(nodeID: nodeID))
        }
        current = next
        return events
    }
}
