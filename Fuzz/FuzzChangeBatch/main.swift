import PeatCRDT
import PeatFuzzCRDTSupport
import PeatFuzzSupport

/// `Document.applyChanges(_:)` — the change batch decoder (`ChangeBatchDecoder`, `OpCodec`, LZ
/// decompression) and causal apply — on a document that already has history. Whatever the batch does,
/// it throws a `PeatCRDTError` or applies, and the document then still edits, saves and reloads.
///
/// Input: a byte choosing the receiving document (empty or `SampleDocuments.small`), then the batch.
enum ChangeBatchTarget {
    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let doc = input.byte() & 1 == 0 ? Document(actor: SampleDocuments.fuzzer) : SampleDocuments.small(SampleDocuments.fuzzer)
        doc.maximumQueuedChanges = 1_000
        _ = try? doc.applyChanges(input.rest())
        DocumentChecks.editSaveAndReload(doc)
    }

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        var seeds: [(String, [UInt8])] = []
        for (name, doc) in SampleDocuments.all() where name != "compacted" {
            let batch = doc.encodeChanges(since: VersionVector())!
            seeds.append(("\(name)-into-empty", [0] + batch))
            seeds.append(("\(name)-into-small", [1] + batch))
        }
        // Only what a second actor added on top of `small`: its dependencies are already there.
        let merged = SampleDocuments.merged()
        let delta = merged.encodeChanges(since: SampleDocuments.small().version)!
        seeds.append(("delta-onto-small", [1] + delta))
        seeds.append(("delta-missing-deps", [0] + delta))
        seeds.append(("saved-compacted", [0] + SampleDocuments.compacted().save()))
        seeds.append(("header-only", [0, 1, 0]))
        seeds.append(("future-format", [0, 2, 0]))
        return seeds
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    ChangeBatchTarget.run(FuzzMain.bytes(data, size))
    return 0
}

FuzzMain.run(seeds: ChangeBatchTarget.seeds)
