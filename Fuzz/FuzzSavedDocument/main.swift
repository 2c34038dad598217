import PeatCRDT
import PeatFuzzCRDTSupport
import PeatFuzzSupport

/// `Document(loading:actor:)` — saved documents as the store hands them back, with or without a
/// state section (compacted history, merged snapshots). It throws a `PeatCRDTError` or loads a
/// document that edits, saves and reloads to the same state.
enum SavedDocumentTarget {
    static func run(_ bytes: [UInt8]) {
        guard let doc = try? Document(loading: bytes, actor: SampleDocuments.fuzzer) else { return }
        DocumentChecks.editSaveAndReload(doc)
    }

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        var seeds: [(String, [UInt8])] = SampleDocuments.all().map { ($0.name, $0.document.save()) }
        let snapshotted = Document(actor: SampleDocuments.bob)
        try! snapshotted.mergeLatestSnapshot(SampleDocuments.merged().latestSnapshot())
        seeds.append(("merged-snapshot", snapshotted.save()))
        seeds.append(("empty", Document(actor: SampleDocuments.alice).save()))
        return seeds
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    SavedDocumentTarget.run(FuzzMain.bytes(data, size))
    return 0
}

FuzzMain.run(seeds: SavedDocumentTarget.seeds)
