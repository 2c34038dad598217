import PeatDiscovery
import PeatDiscoveryTesting

/// Discovery of this service's own: peers from its configuration file, announced once.
final class ConfiguredDiscovery: DiscoveryStrategy {
    let name = "configured"
    let events: AsyncStream<DiscoveryEvent>
    private let continuation: AsyncStream<DiscoveryEvent>.Continuation
    private let peers: [PeerInfo]

    init(peers: [(nodeID: String, host: String, port: Int)]) {
        self.peers = peers.map { PeerInfo(nodeID: $0.nodeID, addresses: [PeerEndpoint(host: $0.host, port: $0.port)], source: "configured") }
        (events, continuation) = AsyncStream.makeStream(of: DiscoveryEvent.self)
    }

    func run() async throws {
        defer { continuation.finish() }
        for peer in peers { continuation.yield(.peerFound(peer)) }
        // Runs until cancelled (a ServiceGroup cancels it at shutdown).
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
    }
}

let expected = DiscoveryStrategyConformance.ExpectedPeer(nodeID: "edge-8", addresses: [PeerEndpoint(host: "192.0.2.8", port: 11204)])
for check in DiscoveryStrategyConformance.checks {
    try await check.run(on: ConfiguredDiscovery(peers: [("edge-8", "192.0.2.8", 11204)]), expecting: expected)
    print("conforms: \(check)")
}
print("DiscoveryExample: \(DiscoveryStrategyConformance.checks.count) checks passed")
