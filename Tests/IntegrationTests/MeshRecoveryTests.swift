import Foundation
import PeatCRDT
import PeatIdentity
import PeatMesh
import PeatStorage
import PeatTestSupport
import Testing

/// Restarts, wiped data directories, stopped nodes, strangers and compaction on three real nodes.
@Suite(.serialized)
struct MeshRecoveryTests {
    @Test func aStoppedNodeMissesWritesThenCatchesUpAfterRestartWithItsDataAndIdentity() async throws {
        let cluster = try await MeshCluster(size: 3)
        do {
            try await cluster.waitConnected()
            try await cluster.mesh(0).put("commands", "before", ["n": .int(1)])
            try await cluster.waitValue("commands", "before", equals: ["n": .int(1)])
            let device = cluster.mesh(2).deviceID
            let actor = cluster.nodes[2]!.store.actorID
            try await cluster.stop(2)
            // Writes while node 2 is down, including an edit and a delete of what it has.
            try await cluster.mesh(0).put("commands", "during", ["n": .int(2)])
            try await cluster.mesh(1).patch("commands", "before", ["n": .int(3)])
            try await cluster.mesh(1).put("beacons", "gone", ["x": .int(1)])
            try await cluster.waitValue("beacons", "gone", equals: ["x": .int(1)])
            #expect(try await cluster.mesh(0).delete("beacons", "gone"))
            try await cluster.start(2)
            #expect(cluster.mesh(2).deviceID == device)
            #expect(cluster.nodes[2]!.store.actorID == actor)
            try await cluster.waitConnected()
            try await cluster.waitValue("commands", "during", equals: ["n": .int(2)])
            try await cluster.waitValue("commands", "before", equals: ["n": .int(3)])
            try await cluster.waitValue("beacons", "gone", equals: nil)
        } catch {
            await cluster.shutdown()
            throw error
        }
        await cluster.shutdown()
    }

    @Test func aNodeRestartedWithAnEmptyDataDirectoryGetsEverythingBackAsANewActor() async throws {
        let cluster = try await MeshCluster(size: 3)
        do {
            try await cluster.waitConnected()
            for d in 0..<20 {
                try await cluster.mesh(d % 3).put("commands", "c\(d)", ["n": .int(Int64(d))])
                try await cluster.mesh(d % 3).put("beacons", "b\(d)", ["n": .int(Int64(d))])
            }
            for d in 0..<20 { try await cluster.waitValue("commands", "c\(d)", equals: ["n": .int(Int64(d))]) }
            let device = cluster.mesh(2).deviceID
            let oldActor = cluster.nodes[2]!.store.actorID
            try await cluster.stop(2)
            try cluster.wipe(2)
            try await cluster.start(2)
            #expect(cluster.mesh(2).deviceID == device)
            #expect(cluster.nodes[2]!.store.actorID != oldActor)
            try await cluster.waitConnected()
            for d in 0..<20 {
                try await cluster.waitValue("commands", "c\(d)", equals: ["n": .int(Int64(d))])
                try await cluster.waitValue("beacons", "b\(d)", equals: ["n": .int(Int64(d))])
            }
            // The wiped node writes again as its new actor; nobody's history is corrupted.
            try await cluster.mesh(2).patch("commands", "c0", ["n": .int(100)])
            try await cluster.mesh(0).patch("commands", "c1", ["n": .int(101)])
            try await cluster.waitValue("commands", "c0", equals: ["n": .int(100)])
            try await cluster.waitValue("commands", "c1", equals: ["n": .int(101)])
        } catch {
            await cluster.shutdown()
            throw error
        }
        await cluster.shutdown()
    }

    @Test func aNodeWithAnotherFormationSecretNeverConnects() async throws {
        let cluster = try await MeshCluster(size: 3)
        do {
            try await cluster.waitConnected()
            try await cluster.stop(2)
            try await cluster.start(2, secret: .generate())
            try await cluster.mesh(0).put("commands", "secret", ["n": .int(1)])
            try await cluster.waitValue("commands", "secret", equals: ["n": .int(1)], timeout: .seconds(1)).self
        } catch is TimedOut {
            // Expected: node 2 never gets it. Check that nothing crossed in either direction.
            #expect(cluster.mesh(2).peers().filter(\.connected).isEmpty)
            #expect(cluster.mesh(0).peers().filter(\.connected).count == 1)
            #expect(try await cluster.mesh(2).document("commands", "secret") == nil)
            let traffic = cluster.mesh(2).traffic.totals
            #expect(traffic.framesReceived == 0 && traffic.framesSent == 0)
            await cluster.shutdown()
            return
        } catch {
            await cluster.shutdown()
            throw error
        }
        await cluster.shutdown()
        Issue.record("a node with another secret received a document")
    }

    @Test func peersInSyncExchangeNothingAndAntiEntropyRepairsWhatPushMissed() async throws {
        let cluster = try await MeshCluster(size: 2, antiEntropy: .milliseconds(200))
        do {
            try await cluster.waitConnected()
            for d in 0..<50 { try await cluster.mesh(0).put("tracks", "t\(d)", ["n": .int(Int64(d))]) }
            for d in 0..<50 { try await cluster.waitValue("tracks", "t\(d)", equals: ["n": .int(Int64(d))]) }
            // Let both sides agree on their roots, then measure a quiet period of many anti-entropy passes.
            try await Task.sleep(for: .seconds(1))
            let before = (cluster.mesh(0).traffic.totals, cluster.mesh(1).traffic.totals)
            try await Task.sleep(for: .seconds(2))
            let after = (cluster.mesh(0).traffic.totals, cluster.mesh(1).traffic.totals)
            #expect(after.0.framesSent == before.0.framesSent)
            #expect(after.1.framesSent == before.1.framesSent)
            // A write straight into node 1's store (no push) is found by anti-entropy once node 1 restarts.
            try await cluster.stop(1)
            try await cluster.mesh(0).put("tracks", "late", ["n": .int(7)])
            try await cluster.start(1)
            try await cluster.waitValue("tracks", "late", equals: ["n": .int(7)])
        } catch {
            await cluster.shutdown()
            throw error
        }
        await cluster.shutdown()
    }

    @Test func compactionShrinksALatestOnlyDocumentAndPeersStayConverged() async throws {
        let cluster = try await MeshCluster(
            size: 3, compaction: CompactionConfiguration(enabled: true, interval: .seconds(3600), thresholdBytes: 1024))
        do {
            try await cluster.waitConnected()
            for n in 0..<200 {
                try await cluster.mesh(0).put("beacons", "busy", ["n": .int(Int64(n)), "pad": .string(String(repeating: "\(n % 7)", count: 40))])
            }
            let final: [String: JSON] = ["n": .int(199), "pad": .string(String(repeating: "3", count: 40))]
            try await cluster.waitValue("beacons", "busy", equals: final)
            let key = try DocumentKey(collection: "beacons", id: "busy")
            let before = try #require(try cluster.nodes[0]!.store.get(key)).value.count
            let report = await cluster.mesh(0).compact(["beacons"])
            let after = try #require(try cluster.nodes[0]!.store.get(key)).value.count
            #expect(report.documents == 1 && after < before / 4)
            #expect(try await cluster.mesh(0).document("beacons", "busy")?.value == final)
            // Later writes on any node still converge with the compacted replica.
            try await cluster.mesh(2).patch("beacons", "busy", ["n": .int(500)])
            try await cluster.waitValue("beacons", "busy", equals: ["n": .int(500), "pad": .string(String(repeating: "3", count: 40))])
            try await cluster.mesh(0).patch("beacons", "busy", ["n": .int(501)])
            try await cluster.waitValue("beacons", "busy", equals: ["n": .int(501), "pad": .string(String(repeating: "3", count: 40))])
        } catch {
            await cluster.shutdown()
            throw error
        }
        await cluster.shutdown()
    }

    /// On a clock the test holds still, no timer fires (no anti-entropy pass, no redial after a
    /// failed dial): the traffic after the restart is exactly one session's protocol exchange, so
    /// the byte count does not depend on how fast the machine is.
    @Test func persistedSyncStateMeansARestartedPairSendsOnlyTheNewChange() async throws {
        let clock = ManualClock()
        let cluster = try await MeshCluster(size: 2, clock: clock)
        do {
            try await cluster.waitConnected()
            for n in 0..<200 {
                let text = (0..<24).map { _ in String(UInt8.random(in: 0...255), radix: 16) }.joined()
                try await cluster.mesh(0).update("audit_logs", "log") { doc in try doc.put(.root, "entry\(n)", .string(text)) }
            }
            try await eventually("history synced") {
                try await cluster.mesh(1).document("audit_logs", "log")?.value.count == 200
            }
            let key = try DocumentKey(collection: "audit_logs", id: "log")
            let fullSize = try #require(try cluster.nodes[0]!.store.get(key)).value.count
            try await cluster.stop(1)
            try await cluster.stop(0)
            // Node 0 comes back first: its dial to node 1 fails and waits on the still clock, so the
            // only session is the one node 1 opens when it starts.
            try await cluster.start(0)
            try await cluster.mesh(0).update("audit_logs", "log") { doc in try doc.put(.root, "entry200", .string("after restart")) }
            try await cluster.start(1)
            try await eventually("the new change arrived") {
                try await cluster.mesh(1).document("audit_logs", "log")?.value.count == 201
            }
            try await cluster.waitConnected()
            let sent = cluster.mesh(0).traffic.totals
            #expect(fullSize > 4000)
            #expect(sent.bytesSent < 1200, "node 0 sent \(sent.bytesSent) bytes in \(sent.framesSent) frames; the whole history is \(fullSize)")
        } catch {
            await cluster.shutdown()
            throw error
        }
        await cluster.shutdown()
    }
}
