import PeatCRDT
import PeatFuzzCRDTSupport
import PeatFuzzSupport
import PeatMesh
import PeatStorage

/// The small persisted and exchanged records: `VersionVector(decoding:)`, `SyncState(restoring:)`
/// (per-peer sync state kept between sessions) and `PersistedSyncStates(decoding:)` (the mesh's
/// store metadata). Each throws or returns a value that encodes and decodes to itself.
///
/// Input: a byte choosing the decoder, then its bytes.
enum VersionVectorTarget {
    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let which = input.choice(3)
        let body = input.rest()
        switch which {
        case 0:
            guard let vector = try? VersionVector(decoding: body) else { return }
            fuzzInvariant((try? VersionVector(decoding: vector.encoded())) == vector, "a version vector does not survive encoding")
            fuzzInvariant(vector.includes(vector) && vector.merged(with: vector) == vector, "a version vector is not idempotent")
        case 1:
            guard let state = try? SyncState(restoring: body) else { return }
            fuzzInvariant((try? SyncState(restoring: state.persistentBytes())) == state, "a sync state does not survive encoding")
        default:
            guard let states = try? PersistedSyncStates(decoding: body) else { return }
            fuzzInvariant((try? PersistedSyncStates(decoding: states.encoded())) == states, "persisted sync states do not survive encoding")
        }
    }

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        let merged = SampleDocuments.merged()
        var seeds: [(String, [UInt8])] = [
            ("vector-empty", [0] + VersionVector().encoded()),
            ("vector-merged", [0] + merged.version.encoded()),
            ("vector-large-seq", [0] + VersionVector([SampleDocuments.alice: UInt64.max / 2 - 1, SampleDocuments.bob: 1]).encoded()),
        ]
        // A sync state as a peer leaves it after a full exchange, per mode.
        var states: [DocumentKey: [UInt8]] = [:]
        for (n, mode) in [SyncMode.fullHistory, .latestOnly].enumerated() {
            var theirs = SyncState()
            var mine = SyncState()
            let peer = SampleDocuments.small(SampleDocuments.bob)
            for _ in 0..<4 {
                if let message = merged.generateSyncMessage(&mine, mode: mode) { try? peer.receiveSyncMessage(message, &theirs, mode: mode) }
                if let message = peer.generateSyncMessage(&theirs, mode: mode) { try? merged.receiveSyncMessage(message, &mine, mode: mode) }
            }
            seeds.append(("sync-state-\(n)", [1] + mine.persistentBytes()))
            states[try! DocumentKey(collection: n == 0 ? "commands" : "beacons", id: "d\(n)")] = mine.persistentBytes()
        }
        seeds.append(("sync-state-empty", [1] + SyncState().persistentBytes()))
        let incarnation = Array(repeating: UInt8(0x42), count: 16)
        seeds.append(("persisted-states", [2] + PersistedSyncStates(incarnation: incarnation, states: states).encoded()))
        seeds.append(("persisted-empty", [2] + PersistedSyncStates(incarnation: incarnation, states: [:]).encoded()))
        return seeds
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    VersionVectorTarget.run(FuzzMain.bytes(data, size))
    return 0
}

FuzzMain.run(seeds: VersionVectorTarget.seeds)
