import ServiceLifecycle
import Synchronization

/// Merges several discovery strategies into one.
///
/// A peer is found when the first source reports it, updated when the union of what its sources
/// say changes, and lost only when every source that reported it has lost it. Addresses and
/// metadata are unioned; the relay URL of the first source (by name) that has one wins.
public final class HybridDiscovery: DiscoveryStrategy {
    public let name: String
    public let events: AsyncStream<DiscoveryEvent>
    private let continuation: AsyncStream<DiscoveryEvent>.Continuation
    private let sources: [any DiscoveryStrategy]
    private let merger = Mutex(Merger())

    /// The reference-counting core, a plain value for tests.
    struct Merger {
        /// node ID -> source name -> what that source says.
        private(set) var reports: [String: [String: PeerInfo]] = [:]
        private var differ = PeerSnapshotDiffer()

        /// Applies one source's event; returns the merged events to emit.
        mutating func apply(_ event: DiscoveryEvent, from source: String) -> [DiscoveryEvent] {
            switch event {
            case .peerFound(let peer), .peerUpdated(let peer):
                reports[peer.nodeID, default: [:]][source] = peer
            case .peerLost(let nodeID):
                reports[nodeID]?[source] = nil
                if reports[nodeID]?.isEmpty == true { reports[nodeID] = nil }
            }
            return differ.update(to: reports.map { Self.merge(nodeID: $0.key, $0.value) })
        }

        static func merge(nodeID: String, _ bySource: [String: PeerInfo]) -> PeerInfo {
            let names = bySource.keys.sorted()
            var addresses = Set<PeerEndpoint>()
            var metadata: [String: String] = [:]
            var relay: String?
            for name in names {
                let peer = bySource[name]!
                addresses.formUnion(peer.addresses)
                metadata.merge(peer.metadata) { first, _ in first }
                relay = relay ?? peer.relayURL
            }
            return PeerInfo(nodeID: nodeID, addresses: Array(addresses), relayURL: relay, metadata: metadata, source: names.joined(separator: "+"))
        }
    }

    /// - Parameter sources: The strategies to merge; their names must differ.
    public init(_ sources: [any DiscoveryStrategy]) {
        self.sources = sources
        self.name = sources.map(\.name).joined(separator: "+")
        (events, continuation) = AsyncStream.makeStream(of: DiscoveryEvent.self, bufferingPolicy: .bufferingNewest(4096))
    }

    /// Runs every source and merges their events until they all stop.
    public func run() async throws {
        defer { continuation.finish() }
        try await withThrowingDiscardingTaskGroup { group in
            for source in sources {
                group.addTask { try await source.run() }
                group.addTask {
                    for await event in source.events {
                        let merged = self.merger.withLock { $0.apply(event, from: source.name) }
                        for event in merged { self.continuation.yield(event) }
                    }
                }
            }
        }
    }
}
