import Foundation
import PeatDiscovery
import Testing

/// Behaviour every `DiscoveryStrategy` shares, run against each one that works in-process.
/// (`MDNSDiscovery` needs a multicast interface; the node-level tests in network namespaces
/// cover the same behaviour for it.)
@Suite(.timeLimit(.minutes(1)))
struct DiscoveryStrategyConformanceTests {
    enum Kind: String, CaseIterable, Sendable { case staticPeers, hybrid, kubernetes }

    /// Runs a strategy that knows peer `peat-mesh-1` at 10.42.0.6:11204 (and itself, `peat-mesh-0`).
    static func withStrategy(_ kind: Kind, _ body: @escaping @Sendable (any DiscoveryStrategy) async throws -> Void) async throws {
        switch kind {
        case .staticPeers:
            try await run(StaticDiscovery(peers: [.init(nodeID: "peat-mesh-1", host: "10.42.0.6", port: 11204)]), body)
        case .hybrid:
            let hybrid = HybridDiscovery([
                StaticDiscovery(peers: [.init(nodeID: "peat-mesh-1", host: "10.42.0.6", port: 11204)]),
            ])
            try await run(hybrid, body)
        case .kubernetes:
            try await KubernetesDiscoveryTests.withCluster { _, discovery, _ in try await body(discovery) }
        }
    }

    static func run(_ strategy: some DiscoveryStrategy, _ body: @escaping @Sendable (any DiscoveryStrategy) async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await strategy.run() }
            try await body(strategy)
            group.cancelAll()
        }
    }

    @Test(arguments: Kind.allCases)
    func reportsAKnownPeerOnceWithItsAddressAndSource(_ kind: Kind) async throws {
        try await Self.withStrategy(kind) { strategy in
            var events = strategy.events.makeAsyncIterator()
            guard case .peerFound(let peer)? = await events.next() else {
                Issue.record("\(kind): the first event must be peerFound")
                return
            }
            #expect(peer.nodeID == "peat-mesh-1")
            #expect(peer.addresses == [PeerEndpoint(host: "10.42.0.6", port: 11204)])
            #expect(peer.source.contains(strategy.name) || strategy.name.contains(peer.source))
        }
    }

    @Test(arguments: Kind.allCases)
    func eventsEndWhenTheStrategyStops(_ kind: Kind) async throws {
        let stopped = StrategyBox()
        try await Self.withStrategy(kind) { strategy in
            var events = strategy.events.makeAsyncIterator()
            _ = await events.next()
            stopped.strategy = strategy
        }
        // run() has returned (cancelled): the stream must end, so this loop terminates.
        let strategy = try #require(stopped.strategy)
        var remaining = 0
        for await _ in strategy.events { remaining += 1 }
        #expect(remaining < 10)
    }

    final class StrategyBox: @unchecked Sendable {
        // @unchecked Sendable: written once inside the test body, read after it returned.
        var strategy: (any DiscoveryStrategy)?
    }
}
