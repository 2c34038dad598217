import Foundation
import Hummingbird
import PeatDiscovery
import PeatKubernetesDiscovery
import PeatTestSupport
import Testing

/// `KubernetesDiscovery` + `HTTPKubernetesAPIClient` against the HTTPS API double.
@Suite(.timeLimit(.minutes(1)))
struct KubernetesDiscoveryTests {
    /// Runs the double and discovery (as pod `peat-mesh-0`), then `body` with the event iterator.
    /// Runs an API double and a discovery pointed at it (`running: false`: the body runs discovery).
    static func withCluster(
        running: Bool = true, _ body: @escaping @Sendable (KubernetesAPIDouble, KubernetesDiscovery, String) async throws -> Void
    ) async throws {
        let double = try KubernetesAPIDouble()
        double.setSlice("peat-mesh-abc", pods: [("peat-mesh-0", "10.42.0.5"), ("peat-mesh-1", "10.42.0.6")])
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("k8s-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tokenPath = directory + "/token"
        try Data("token-1\n".utf8).write(to: URL(fileURLWithPath: tokenPath))
        let (ports, portSink) = AsyncStream.makeStream(of: Int.self)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await double.application { portSink.yield($0) }.runService() }
            var portIterator = ports.makeAsyncIterator()
            let port = try #require(await portIterator.next())
            let client = try HTTPKubernetesAPIClient(
                configuration: .init(
                    server: "https://127.0.0.1:\(port)", namespace: "peat",
                    token: .file(path: tokenPath, refresh: .seconds(3600)), certificateAuthorityPEM: Array(double.certificatePEM.utf8)))
            var configuration = KubernetesDiscovery.Configuration()
            configuration.localNodeID = "peat-mesh-0"
            configuration.backoffInitial = .milliseconds(50)
            configuration.backoffMaximum = .milliseconds(200)
            let discovery = KubernetesDiscovery(client: client, configuration: configuration)
            if running { group.addTask { try await discovery.run() } }
            try await body(double, discovery, tokenPath)
            group.cancelAll()
        }
    }

    static func peer(_ id: String, _ ip: String) -> PeerInfo {
        PeerInfo(nodeID: id, addresses: [PeerEndpoint(host: ip, port: 11204)], source: "kubernetes")
    }

    /// Waits until the watch is registered (the double counts watch requests).
    static func waitForWatch(_ double: KubernetesAPIDouble, count: Int) async throws {
        for _ in 0..<500 where double.state.withLock({ $0.watches }) < count {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(double.state.withLock { $0.watches } >= count)
    }

    @Test func listThenWatchReportsChangesQuickly() async throws {
        try await Self.withCluster { double, discovery, _ in
            var events = discovery.events.makeAsyncIterator()
            #expect(await events.next() == .peerFound(Self.peer("peat-mesh-1", "10.42.0.6")), "itself is never a peer")
            try await Self.waitForWatch(double, count: 1)

            let start = ContinuousClock.now
            double.setSlice("peat-mesh-abc", pods: [("peat-mesh-0", "10.42.0.5"), ("peat-mesh-1", "10.42.0.6"), ("peat-mesh-2", "10.42.0.7")])
            #expect(await events.next() == .peerFound(Self.peer("peat-mesh-2", "10.42.0.7")))
            let latency = start.duration(to: .now)
            // Functional, not a performance target: a watch delivers at once, a 30 s poll would not.
            #expect(latency < .seconds(5), "a change reaches discovery through the watch, not a poll (\(latency))")

            double.setSlice("peat-mesh-abc", pods: [("peat-mesh-0", "10.42.0.5"), ("peat-mesh-2", "10.42.0.7")])
            #expect(await events.next() == .peerLost(nodeID: "peat-mesh-1"))
            #expect(double.state.withLock { $0.lists } == 1, "watching needs no re-list")
        }
    }

    @Test func cleanWatchEndResumesWithoutListingAnd410Relists() async throws {
        try await Self.withCluster { double, discovery, _ in
            var events = discovery.events.makeAsyncIterator()
            _ = await events.next()
            try await Self.waitForWatch(double, count: 1)
            double.bookmark()
            double.endWatches()  // the server's watch timeout
            try await Self.waitForWatch(double, count: 2)
            #expect(double.state.withLock { $0.lists } == 1)

            double.expireWatches()  // in-stream 410
            for _ in 0..<500 where double.state.withLock({ $0.lists }) < 2 { try await Task.sleep(for: .milliseconds(10)) }
            #expect(double.state.withLock { $0.lists } == 2, "an expired version lists again")
            try await Self.waitForWatch(double, count: 3)
            double.setSlice("peat-mesh-abc", pods: [("peat-mesh-0", "10.42.0.5"), ("peat-mesh-1", "10.42.0.6"), ("peat-mesh-3", "10.42.0.8")])
            #expect(await events.next() == .peerFound(Self.peer("peat-mesh-3", "10.42.0.8")), "the re-list itself reported nothing new")
        }
    }

    @Test func http410OnTheWatchRelists() async throws {
        try await Self.withCluster { double, discovery, _ in
            var events = discovery.events.makeAsyncIterator()
            _ = await events.next()
            try await Self.waitForWatch(double, count: 1)
            double.state.withLock { $0.failures = [(410, nil)] }
            double.endWatches()  // the next watch request is answered 410 Gone
            for _ in 0..<500 where double.state.withLock({ $0.lists }) < 2 { try await Task.sleep(for: .milliseconds(10)) }
            #expect(double.state.withLock { $0.lists } == 2)
            #expect(discovery.degradedReason == nil, "410 is not an outage")
        }
    }

    @Test func apiOutageKeepsTheKnownPeersAndRecovers() async throws {
        try await Self.withCluster { double, discovery, _ in
            var events = discovery.events.makeAsyncIterator()
            #expect(await events.next() == .peerFound(Self.peer("peat-mesh-1", "10.42.0.6")))
            try await Self.waitForWatch(double, count: 1)
            double.state.withLock { $0.failures = [(503, 0), (500, nil), (500, nil)] }
            double.endWatches()
            for _ in 0..<500 where double.state.withLock({ !$0.failures.isEmpty }) { try await Task.sleep(for: .milliseconds(10)) }
            try await Self.waitForWatch(double, count: 2)
            #expect(discovery.degradedReason == nil, "recovered")
            // No peerLost was emitted during the outage: the next event is the next real change.
            double.setSlice("peat-mesh-abc", pods: [("peat-mesh-0", "10.42.0.5"), ("peat-mesh-1", "10.42.0.6"), ("peat-mesh-4", "10.42.0.9")])
            #expect(await events.next() == .peerFound(Self.peer("peat-mesh-4", "10.42.0.9")))
        }
    }

    @Test func rotatedTokenIsReReadAfterA401() async throws {
        try await Self.withCluster { double, discovery, tokenPath in
            var events = discovery.events.makeAsyncIterator()
            _ = await events.next()
            try await Self.waitForWatch(double, count: 1)
            // The cluster rotates the token: the file changes, old tokens are refused.
            try Data("token-2\n".utf8).write(to: URL(fileURLWithPath: tokenPath))
            double.state.withLock { $0.token = "token-2" }
            double.endWatches()
            try await Self.waitForWatch(double, count: 2)
            double.setSlice("peat-mesh-abc", pods: [("peat-mesh-0", "10.42.0.5"), ("peat-mesh-1", "10.42.0.6"), ("peat-mesh-5", "10.42.0.10")])
            #expect(await events.next() == .peerFound(Self.peer("peat-mesh-5", "10.42.0.10")))
        }
    }

    @Test func inClusterConfigurationNeedsTheServiceEnvironment() throws {
        #expect(throws: DiscoveryError.self) { try KubernetesAPIConfiguration.inCluster(environment: [:]) }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sa-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data("peat\n".utf8).write(to: URL(fileURLWithPath: directory + "/namespace"))
        let configuration = try KubernetesAPIConfiguration.inCluster(
            environment: ["KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"], serviceAccountDirectory: directory)
        #expect(configuration.server == "https://[fd00::1]:443")
        #expect(configuration.namespace == "peat")
    }
}
