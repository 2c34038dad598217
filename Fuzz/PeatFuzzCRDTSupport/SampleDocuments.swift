package import PeatCRDT

/// Documents built with the real editing API, for the CRDT targets' harnesses and seeds. Times are
/// fixed, so the same call always builds the same bytes.
package enum SampleDocuments {
    package static let alice = ActorID(bytes: Array(repeating: 0xA1, count: 16))!
    package static let bob = ActorID(bytes: Array(repeating: 0xB0, count: 16))!
    /// The actor a harness loads documents as (never one that wrote the samples).
    package static let fuzzer = ActorID(bytes: Array(repeating: 0xF0, count: 16))!

    /// A small document by `actor`: scalars of every type, a nested map, a list, a text and a counter.
    package static func small(_ actor: ActorID = alice, time: Int64 = 1_700_000_000_000) -> Document {
        let doc = Document(actor: actor)
        try! doc.put(.root, "callsign", .string("alpha"))
        try! doc.put(.root, "lat", .double(48.1))
        try! doc.put(.root, "alive", .bool(true))
        try! doc.put(.root, "none", .null)
        try! doc.put(.root, "seen", .timestamp(1_700_000_000))
        try! doc.put(.root, "blob", .bytes([0, 1, 2, 255]))
        try! doc.put(.root, "hits", .counter(0))
        doc.commit(time: time)
        let position = try! doc.putObject(.root, "position", .map)
        try! doc.put(position, "x", .int(-3))
        let list = try! doc.putObject(.root, "tags", .list)
        try! doc.insert(list, at: 0, .string("a"))
        try! doc.insert(list, at: 1, .int(2))
        try! doc.increment(.root, "hits", by: 5)
        doc.commit(time: time + 1)
        let text = try! doc.putObject(.root, "note", .text)
        try! doc.spliceText(text, at: 0, inserting: "hello mesh")
        doc.commit(time: time + 2)
        return doc
    }

    /// `small` edited concurrently by a second actor and merged: conflicts, deletes, text runs.
    package static func merged() -> Document {
        let a = small()
        let b = Document(actor: bob)
        try! b.applyChanges(a.save())
        try! b.put(.root, "callsign", .string("bravo"))
        try! b.delete(.root, "none")
        if case .object(let note, _)? = b.get(.root, "note") {
            try! b.spliceText(note, at: 5, deleting: 5, inserting: " world, typed one character at a time")
        }
        b.commit(time: 1_700_000_001_000)
        try! a.put(.root, "callsign", .string("charlie"))
        a.commit(time: 1_700_000_001_001)
        try! a.applyChanges(b.save())
        return a
    }

    /// A document whose history was compacted after more edits: its save has a state section.
    package static func compacted() -> Document {
        let doc = merged()
        doc.compact()
        try! doc.put(.root, "after", .int(1))
        doc.commit(time: 1_700_000_002_000)
        return doc
    }

    /// A document with a long text typed one character per change: its save is LZ-compressed.
    package static func long() -> Document {
        let doc = Document(actor: alice)
        let text = try! doc.putObject(.root, "log", .text)
        doc.commit(time: 1)
        for (i, character) in "the quick brown fox jumps over the lazy dog; ".repeated(8).enumerated() {
            try! doc.spliceText(text, at: i, inserting: String(character))
            doc.commit(time: 2 + Int64(i / 50))
        }
        try! doc.spliceText(text, at: 10, deleting: 40)
        doc.commit(time: 100)
        return doc
    }

    /// Every sample, named.
    package static func all() -> [(name: String, document: Document)] {
        [("small", small()), ("merged", merged()), ("compacted", compacted()), ("long", long())]
    }
}

extension String {
    fileprivate func repeated(_ n: Int) -> String { String(repeating: self, count: n) }
}

/// Checks a CRDT target needs after any input: the document still works — a local edit commits,
/// and what it saves loads back to the same state.
package enum DocumentChecks {
    package static func editSaveAndReload(_ doc: Document, file: StaticString = #fileID, line: UInt = #line) {
        try? doc.put(.root, "fuzz.edit", .int(1))
        doc.commit(time: 1_800_000_000_000)
        let saved = doc.save()
        let reloaded: Document
        do {
            reloaded = try Document(loading: saved, actor: SampleDocuments.fuzzer)
        } catch {
            fatalError("invariant broken: a saved document does not load: \(error)", file: file, line: line)
        }
        if reloaded.latestSnapshot() != doc.latestSnapshot() {
            fatalError("invariant broken: a reloaded document differs from the saved one", file: file, line: line)
        }
    }
}
