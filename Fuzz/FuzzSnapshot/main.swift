import PeatCRDT
import PeatFuzzCRDTSupport
import PeatFuzzSupport

/// `Document.mergeLatestSnapshot(_:)` — LatestOnly snapshots from a peer — into an empty document or
/// one with content. It throws a `PeatCRDTError` (changing nothing) or merges; the merged document's
/// own snapshot then rebuilds the same state in a fresh document, and it edits, saves and reloads.
///
/// Input: a byte choosing the receiving document (empty or `SampleDocuments.small`), then the snapshot.
enum SnapshotTarget {
    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let doc = input.byte() & 1 == 0 ? Document(actor: SampleDocuments.fuzzer) : SampleDocuments.small(SampleDocuments.fuzzer)
        let before = doc.latestSnapshot()
        do {
            try doc.mergeLatestSnapshot(input.rest())
        } catch {
            fuzzInvariant(doc.latestSnapshot() == before, "a refused snapshot changed the document")
            return
        }
        let snapshot = doc.latestSnapshot()
        let fresh = Document(actor: SampleDocuments.alice)
        do {
            try fresh.mergeLatestSnapshot(snapshot)
        } catch {
            fuzzInvariant(false, "a document's own snapshot does not merge: \(error)")
        }
        fuzzInvariant(fresh.latestSnapshot() == snapshot, "a snapshot does not rebuild the state it describes")
        DocumentChecks.editSaveAndReload(doc)
    }

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        var seeds: [(String, [UInt8])] = []
        for (name, doc) in SampleDocuments.all() {
            seeds.append(("\(name)-into-empty", [0] + doc.latestSnapshot()))
            seeds.append(("\(name)-into-small", [1] + doc.latestSnapshot()))
        }
        let deleted = SampleDocuments.small(SampleDocuments.bob)
        try! deleted.delete(.root, "callsign")
        try! deleted.delete(.root, "tags")
        deleted.commit(time: 1_700_000_003_000)
        seeds.append(("tombstones-into-small", [1] + deleted.latestSnapshot()))
        seeds.append(("no-fields", [0, 1, 0]))
        return seeds
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    SnapshotTarget.run(FuzzMain.bytes(data, size))
    return 0
}

FuzzMain.run(seeds: SnapshotTarget.seeds)
