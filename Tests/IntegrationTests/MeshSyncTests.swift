import Foundation
import PeatCRDT
import PeatIdentity
import PeatMesh
import PeatTestSupport
import Testing

/// Three and five real mesh nodes (LMDB, TLS on 127.20.x.y, static discovery) in this process.
@Suite(.serialized)
struct MeshSyncTests {
    @Test func writesOnAnyNodeAppearOnAllThreeAndDeletesToo() async throws {
        let cluster = try await MeshCluster(size: 3)
        do {
            try await cluster.waitConnected()
            for i in 0..<3 {
                try await cluster.mesh(i).put("beacons", "b\(i)", ["lat": .double(1.5 + Double(i)), "name": .string("n\(i)")])
                try await cluster.mesh(i).put("commands", "c\(i)", ["verb": .string("go"), "n": .int(Int64(i))])
            }
            for i in 0..<3 {
                try await cluster.waitValue("beacons", "b\(i)", equals: ["lat": .double(1.5 + Double(i)), "name": .string("n\(i)")])
                try await cluster.waitValue("commands", "c\(i)", equals: ["verb": .string("go"), "n": .int(Int64(i))])
            }
            try await cluster.mesh(1).patch("commands", "c0", ["n": .int(42), "extra": .bool(true)])
            try await cluster.waitValue("commands", "c0", equals: ["verb": .string("go"), "n": .int(42), "extra": .bool(true)])
            #expect(try await cluster.mesh(2).delete("beacons", "b1"))
            try await cluster.waitValue("beacons", "b1", equals: nil)
            for i in 0..<3 {
                #expect(try await cluster.mesh(i).documents(in: "beacons").documents.map(\.key.id) == ["b0", "b2"])
            }
            // A deleted document can be created again, everywhere.
            try await cluster.mesh(0).put("beacons", "b1", ["again": .bool(true)])
            try await cluster.waitValue("beacons", "b1", equals: ["again": .bool(true)])
        } catch {
            await cluster.shutdown()
            throw error
        }
        await cluster.shutdown()
    }

    /// Many more documents than the document cache holds, written while the peer syncs: every one
    /// arrives intact (the engine evicts and reloads documents mid-sync on both sides).
    @Test func documentsBeyondTheCacheArriveIntact() async throws {
        let cluster = try await MeshCluster(size: 2, cacheSize: 16)
        do {
            try await cluster.waitConnected()
            let count = 300
            for i in 0..<count {
                try await cluster.mesh(0).put(i % 2 == 0 ? "beacons" : "commands", "d\(i)", ["n": .int(Int64(i))])
            }
            try await eventually("\(count) documents on node 1", timeout: .seconds(60)) {
                var missing = 0
                for i in 0..<count where try await cluster.mesh(1).document(i % 2 == 0 ? "beacons" : "commands", "d\(i)")?.value != ["n": .int(Int64(i))] {
                    missing += 1
                }
                return missing == 0
            }
        } catch {
            var wrong: [String] = []
            for i in 0..<300 {
                let value = try? await cluster.mesh(1).document(i % 2 == 0 ? "beacons" : "commands", "d\(i)")?.value
                if value != ["n": .int(Int64(i))] { wrong.append("d\(i)=\(String(describing: value))") }
            }
            Issue.record("\(wrong.count) wrong on node 1: \(wrong.prefix(8))")
            await cluster.shutdown()
            throw error
        }
        await cluster.shutdown()
    }

    @Test func concurrentEditsOnFiveNodesConverge() async throws {
        let cluster = try await MeshCluster(size: 5)
        do {
            try await cluster.waitConnected()
            // Every node writes its own field of the same documents at once, and one shared field.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<5 {
                    let mesh = cluster.mesh(i)
                    group.addTask {
                        for d in 0..<10 {
                            try await mesh.update("contact_reports", "r\(d)") { doc in
                                try doc.put(.root, "by\(i)", .int(Int64(d)))
                                try doc.put(.root, "last", .string("n\(i)"))
                            }
                            try await mesh.update("tracks", "t\(d)") { doc in
                                try doc.put(.root, "f\(i)", .int(Int64(i)))
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            for d in 0..<10 {
                try await eventually("r\(d) converged", timeout: .seconds(30)) {
                    let values = try await cluster.values("contact_reports", "r\(d)")
                    guard let first = values[0], first.count == 6 else { return false }
                    return values.allSatisfy { $0 == first }
                }
                try await eventually("t\(d) converged", timeout: .seconds(30)) {
                    let values = try await cluster.values("tracks", "t\(d)")
                    return values.allSatisfy { $0 == ["f0": .int(0), "f1": .int(1), "f2": .int(2), "f3": .int(3), "f4": .int(4)] }
                }
            }
        } catch {
            await cluster.shutdown()
            throw error
        }
        await cluster.shutdown()
    }
}
