import Foundation
import MetricsTestKit
import NIOCore
import NIOPosix
import PeatCRDT
import PeatIdentity
import PeatMesh
import PeatTestSupport
import PeatTransport
import Synchronization
import Testing

/// The sync listener under a flood of idle sockets and bogus TLS clients while three members keep
/// syncing: the members stay connected and their writes keep arriving. (Latency during the flood
/// is a benchmark figure, `mesh_bench.py flood`; here only what must hold, counted.)
@Suite(.serialized, .timeLimit(.minutes(5)))
struct ListenerFloodTests {
    /// What the flood tasks share: the stop signal and what they count.
    final class Flood: Sendable {
        let stopped = Atomic<Bool>(false)
        let opened = Atomic<Int>(0)
        let attempts = Atomic<Int>(0)
        var isStopped: Bool { stopped.load(ordering: .relaxed) }
    }

    /// Keeps `count` plain TCP connections open to `target` from `sources` (round robin): each one
    /// that the node closes is opened again after a short pause, until `stop` is set.
    static func idleFlood(count: Int, sources: [String], target: PeerAddress, flood: Flood) async {
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                let source = sources[index % sources.count]
                group.addTask {
                    while !flood.isStopped {
                        if let channel = try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                            .connectTimeout(.seconds(2))
                            .bind(to: try SocketAddress(ipAddress: source, port: 0))
                            .connect(host: target.host, port: target.port).get()
                        {
                            flood.opened.add(1, ordering: .relaxed)
                            // Held until the node closes it (the limits at once, or the idle deadline).
                            while channel.isActive, !flood.isStopped { try? await Task.sleep(for: .milliseconds(100)) }
                            try? await channel.close()
                        }
                        try? await Task.sleep(for: .milliseconds(200))
                    }
                }
            }
        }
    }

    /// `count` TLS clients of another formation dialling `target` over and over (real TLS 1.3 with
    /// device certificates; the formation proof fails), until `stop` is set.
    static func bogusTLSFlood(count: Int, target: PeerAddress, flood: Flood) async throws {
        let outsider = FormationSecret.generate()
        let dialers = try (0..<4).map { index in
            try TLSSyncTransport(
                keypair: outsider.deviceKeypair(context: "outsider-\(index)"), formationKey: outsider.formationKey(),
                configuration: .init(host: "127.0.0.1", port: 0))
        }
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                let dialer = dialers[index % dialers.count]
                group.addTask {
                    while !flood.isStopped {
                        flood.attempts.add(1, ordering: .relaxed)
                        _ = try? await dialer.connect(to: target, expectedPeer: nil)
                        try? await Task.sleep(for: .milliseconds(100))
                    }
                }
            }
        }
    }

    @Test func membersStayConnectedAndKeepSyncingThroughAFlood() async throws {
        let flooded = TestMetrics()
        let cluster = try await MeshCluster(size: 3, metrics: { $0 == 0 ? flooded : nil })
        defer { Task { await cluster.shutdown() } }
        try await cluster.waitConnected()
        // A round trip first: a simultaneous dial while the mesh formed may still replace one
        // connection per pair until the sessions have exchanged a change.
        _ = try await cluster.mesh(0).put("beacons", "before-flood", ["n": .int(0)])
        try await cluster.waitValue("beacons", "before-flood", equals: ["n": .int(0)])
        // Any session that ends during the flood is a failure.
        let disconnects = Flood()
        let watchers = (0..<3).map { i in
            let events = cluster.mesh(i).events()
            return Task {
                for await event in events {
                    if case .peerDisconnected = event { disconnects.opened.add(1, ordering: .relaxed) }
                }
            }
        }
        defer { watchers.forEach { $0.cancel() } }

        let target = PeerAddress(host: cluster.host(0), port: MeshCluster.port)
        let sources = (1...50).map { "127.31.\(cluster.subnet).\($0)" }
        let flood = Flood()
        let idle = Task { await Self.idleFlood(count: 1000, sources: sources, target: target, flood: flood) }
        let bogus = Task { try await Self.bogusTLSFlood(count: 200, target: target, flood: flood) }
        let refusedReason = TransportError.Code.tooManyHandshakes.description
        func refused() -> Int64 {
            flooded.counterTotal(label: "peat_transport_rejections_total", dimensions: [("reason", refusedReason), ("direction", "inbound")])
        }
        // The flood is on: the listener is refusing connections past its limits.
        try await waitUntil("the limits refuse connections", timeout: .seconds(60)) { refused() > 500 && flood.attempts.load(ordering: .relaxed) > 200 }

        for n in 0..<20 {
            let writer = n % 3
            let id = "during-flood-\(n)"
            _ = try await cluster.mesh(writer).put("beacons", id, ["n": .int(Int64(n)), "writer": .int(Int64(writer))])
            try await cluster.waitValue("beacons", id, equals: ["n": .int(Int64(n)), "writer": .int(Int64(writer))], timeout: .seconds(60))
        }
        let stillConnected = (0..<3).allSatisfy { cluster.mesh($0).peers().filter(\.connected).count == 2 }
        let flooding = (flood.opened.load(ordering: .relaxed), flood.attempts.load(ordering: .relaxed), refused())
        flood.stopped.store(true, ordering: .relaxed)
        await idle.value
        try await bogus.value

        #expect(stillConnected)
        #expect(disconnects.opened.load(ordering: .relaxed) == 0, "no member session ended during the flood")
        #expect(flooding.0 >= 1000 && flooding.1 >= 200, "the flood ran: \(flooding)")
    }
}
