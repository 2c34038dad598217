import Foundation
import PeatDiscovery
import PeatDiscoveryTesting
import PeatKubernetesDiscovery
import PeatTestSupport
import Testing

/// The in-process strategies run the seam's conformance suite (`PeatDiscoveryTesting`, the one
/// embedders run). (`MDNSDiscovery` needs a multicast interface; the node-level tests in network
/// namespaces cover the same behaviour for it.)
@Suite(.timeLimit(.minutes(1)))
struct DiscoveryStrategyConformanceTests {
    static let expected = DiscoveryStrategyConformance.ExpectedPeer(
        nodeID: "peat-mesh-1", addresses: [PeerEndpoint(host: "10.42.0.6", port: 11204)])

    static func staticPeers() -> StaticDiscovery {
        StaticDiscovery(peers: [.init(nodeID: "peat-mesh-1", host: "10.42.0.6", port: 11204)])
    }

    @Test(arguments: DiscoveryStrategyConformance.checks)
    func staticDiscoveryConforms(_ check: DiscoveryStrategyConformance.Check) async throws {
        try await check.run(on: Self.staticPeers(), expecting: Self.expected)
    }

    @Test(arguments: DiscoveryStrategyConformance.checks)
    func hybridDiscoveryConforms(_ check: DiscoveryStrategyConformance.Check) async throws {
        try await check.run(on: HybridDiscovery([Self.staticPeers()]), expecting: Self.expected)
    }

    @Test(arguments: DiscoveryStrategyConformance.checks)
    func kubernetesDiscoveryConforms(_ check: DiscoveryStrategyConformance.Check) async throws {
        try await KubernetesDiscoveryTests.withCluster(running: false) { _, discovery, _ in
            try await check.run(on: discovery, expecting: Self.expected)
        }
    }
}
