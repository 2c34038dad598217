package import Logging
package import PeatCRDT
package import PeatIdentity
package import PeatMesh
package import PeatStorage

/// A node's documents for the mesh fuzz targets: a repository over an in-memory store, logging nowhere.
package final class MeshReplica {
    static let secret = Array("fuzz-mesh-formation-secret-0123".utf8)
    static let quiet = Logger(label: "peat.fuzz", factory: { _ in SwiftLogNoOpLogHandler() })

    package let nodeID: String
    package let device: DeviceID
    package let store = InMemoryDocumentStore()
    package let repository: DocumentRepository

    package init(_ nodeID: String) {
        self.nodeID = nodeID
        device = DeviceKeypair.fromSeed(Self.secret, context: nodeID).deviceID
        repository = try! DocumentRepository(store: store, modes: SyncModeRegistry(), cacheCapacity: 64, logger: Self.quiet)
        try! repository.buildIndex()
    }

    package func write(_ edit: MeshEdit, _ collection: String, _ id: String) {
        _ = try! repository.apply(edit, to: try! DocumentKey(collection: collection, id: id), ifVersion: nil)
    }

    /// A replica holding one document of each sync mode (LatestOnly `beacons`, FullHistory `commands`,
    /// WindowedHistory `track_history`) plus, with `extra`, documents only this replica has.
    package static func populated(_ nodeID: String, extra: Bool) -> MeshReplica {
        let replica = MeshReplica(nodeID)
        replica.write(.replace(["callsign": .string("alpha"), "lat": .double(48.1), "lon": .double(11.6)]), "beacons", "b1")
        replica.write(.replace(["verb": .string("hold"), "targets": .array([.string("n1"), .string("n2")])]), "commands", "c1")
        replica.write(.replace(["points": .array([.int(1), .int(2)])]), "track_history", "t1")
        if extra {
            replica.write(.mergePatch(["lat": .double(48.2), "speed": .int(12)]), "beacons", "b1")
            replica.write(.replace(["seen": .bool(true), "note": .string(nodeID)]), "contact_reports", "r-\(nodeID)")
            replica.write(.delete, "commands", "c1")
        }
        return replica
    }

    /// The sync state machine this replica runs for `peer`.
    package func machine(to peer: MeshReplica) -> SyncSession.StateMachine {
        SyncSession.StateMachine(peer: peer.device, localNodeID: nodeID, incarnation: store.actorID)
    }
}

/// A real session between two replicas, moved by hand: what `from` sends `to`, frame by frame.
package enum MeshSessionRecorder {
    /// Exchanges frames until both sides are quiet (or `rounds` passes); returns the frames `b` sent `a`
    /// in order, and every frame of both directions.
    package static func record(_ a: MeshReplica, _ b: MeshReplica, rounds: Int = 32) -> (bToA: [[UInt8]], all: [[UInt8]]) {
        var ab = a.machine(to: b)
        var ba = b.machine(to: a)
        var bToA: [[UInt8]] = []
        var all: [[UInt8]] = []
        for _ in 0..<rounds {
            var moved = false
            while let frame = ab.nextFrame(documents: a.repository) {
                all.append(frame)
                _ = try? ba.receive(frame, documents: b.repository)
                moved = true
            }
            while let frame = ba.nextFrame(documents: b.repository) {
                all.append(frame)
                bToA.append(frame)
                _ = try? ab.receive(frame, documents: a.repository)
                moved = true
            }
            if !moved { break }
        }
        return (bToA, all)
    }
}
