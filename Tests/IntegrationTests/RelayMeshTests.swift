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

    /// A TCP forwarder (Python, standard library) from `listen` to `target`, until terminated.
    static func proxy(from listen: [(String, Int)], to targets: [(String, Int)]) throws -> Process {
        let pairs = zip(listen, targets).map { "(\"\($0.0)\", \($0.1), \"\($1.0)\", \($1.1))" }.joined(separator: ", ")
        let script = """
            import signal, socket, threading
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a test process may have left it ignored
            def pump(a, b):
                try:
                    while True:
                        data = a.recv(65536)
                        if not data: break
                        b.sendall(data)
                except OSError: pass
                for s in (a, b):
                    try: s.shutdown(socket.SHUT_RDWR)
                    except OSError: pass
            def serve(host, port, to_host, to_port):
                server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                server.bind((host, port)); server.listen(64)
                while True:
                    client, _ = server.accept()
                    upstream = socket.create_connection((to_host, to_port))
                    threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
                    threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
            for args in [\(pairs)]:
                threading.Thread(target=serve, args=args, daemon=True).start()
            print("proxying", flush=True)
            threading.Event().wait()
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        _ = output.fileHandleForReading.availableData  // "proxying": listening
        return process
    }

    static func stop(_ proxy: Process?) {
        guard let proxy, proxy.isRunning else { return }
        kill(proxy.processIdentifier, SIGKILL)
        proxy.waitUntilExit()
    }

    @Test func aRelayedSessionMovesToTheDirectPathOnceItWorks() async throws {
        let secret = FormationSecret.generate()
        let relay = RunningRelay(secret: secret)
        try await relay.start()
        let crossSitePort = Int.random(in: 20_000...29_999)
        let cluster = try await MeshCluster(size: 2, secret: secret, sites: [0, 1], relay: relay.url, crossSitePort: crossSitePort)
        var proxy: Process?
        do {
            try await cluster.waitConnected()
            #expect(cluster.mesh(0).peers().first?.path == .relay(relay.url))
            // The direct path appears: each node's listed address now reaches the other's listener.
            proxy = try Self.proxy(
                from: [(cluster.host(0), crossSitePort), (cluster.host(1), crossSitePort)],
                to: [(cluster.host(0), MeshCluster.port), (cluster.host(1), MeshCluster.port)])
            try await waitUntil("the session moved to the direct path", timeout: .seconds(60)) {
                cluster.mesh(0).peers().first?.path == .direct && cluster.mesh(1).peers().first?.path == .direct
            }
            #expect(cluster.mesh(0).peers().filter(\.connected).count == 1, "one session, not two")
            try await cluster.mesh(1).put("commands", "after-move", ["n": .int(1)])
            try await cluster.waitValue("commands", "after-move", equals: ["n": .int(1)])
        } catch {
            Self.stop(proxy)
            await cluster.shutdown()
            await relay.stop()
            throw error
        }
        Self.stop(proxy)
        await cluster.shutdown()
        await relay.stop()
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
