import Foundation
import Logging
import PeatCRDT
import PeatIdentity
import PeatMesh
import PeatTestSupport
import PeatTransport
import ServiceLifecycle
import Testing

/// Two sites with no route between them and a relay both reach: same-site peers connect directly,
/// cross-site peers through the relay, writes cross both ways, and a relay restart loses nothing.
@Suite(.serialized)
struct RelayMeshTests {
    /// A relay on loopback, run until `stop()`; started again on the same port by `restart()`.
    final class RunningRelay: @unchecked Sendable {
        // @unchecked: driven by one test task.
        let accessKey: RelayAccessKey
        var port = 0
        private var group: ServiceGroup?
        private var task: Task<Void, any Error>?

        init(secret: FormationSecret) {
            accessKey = RelayAccessKey(secret: secret)
        }

        var url: RelayURL { RelayURL(host: "127.0.0.1", port: port) }

        func start() async throws {
            let relay = try RelayServer(configuration: .init(host: "127.0.0.1", port: port, accessKey: accessKey))
            let group = ServiceGroup(configuration: .init(services: [relay], logger: .init(label: "relay", factory: { _ in SwiftLogNoOpLogHandler() })))
            self.group = group
            task = Task { try await group.run() }
            port = try await relay.listeningAddress().port
        }

        func stop() async {
            await group?.triggerGracefulShutdown()
            _ = try? await task?.value
        }
    }

    @Test func crossSitePeersSyncThroughTheRelayAndSameSitePeersDirectly() async throws {
        let secret = FormationSecret.generate()
        let relay = RunningRelay(secret: secret)
        try await relay.start()
        let cluster = try await MeshCluster(size: 3, secret: secret, antiEntropy: .seconds(1), sites: [0, 0, 1], relay: relay.url)
        do {
            try await cluster.waitConnected()
            func path(_ from: Int, _ to: Int) -> ConnectionPath? {
                cluster.mesh(from).peers().first { $0.id == MeshCluster.nodeID(to) }?.path
            }
            #expect(path(0, 1) == .direct && path(1, 0) == .direct)
            for (a, b) in [(0, 2), (2, 0), (1, 2), (2, 1)] {
                #expect(path(a, b) == .relay(relay.url), "node \(a) reaches node \(b) through the relay")
            }
            try await cluster.mesh(2).put("commands", "from-b", ["site": .string("b")])
            try await cluster.waitValue("commands", "from-b", equals: ["site": .string("b")])
            try await cluster.mesh(0).put("commands", "from-a", ["site": .string("a")])
            try await cluster.waitValue("commands", "from-a", equals: ["site": .string("a")])

            // The relay goes away: writes on both sides while it is down arrive once it is back.
            await relay.stop()
            try await waitUntil("relayed sessions end") { cluster.mesh(2).peers().filter(\.connected).isEmpty }
            try await cluster.mesh(1).put("commands", "during-outage", ["n": .int(1)])
            try await cluster.mesh(2).patch("commands", "from-b", ["edited": .bool(true)])
            try await relay.start()
            try await cluster.waitConnected()
            try await cluster.waitValue("commands", "during-outage", equals: ["n": .int(1)])
            try await cluster.waitValue("commands", "from-b", equals: ["site": .string("b"), "edited": .bool(true)])
            #expect(path(2, 0) == .relay(relay.url))
        } catch {
            await cluster.shutdown()
            await relay.stop()
            throw error
        }
        await cluster.shutdown()
        await relay.stop()
    }
}
