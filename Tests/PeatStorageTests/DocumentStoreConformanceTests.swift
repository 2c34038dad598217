import Foundation
import Testing
@testable import PeatStorage

/// The behaviour every `DocumentStore` must have, run against each implementation.
struct DocumentStoreConformanceTests {
    enum Kind: String, CaseIterable, Sendable { case inMemory, lmdb }

    static func withStore(_ kind: Kind, _ body: (any DocumentStore) async throws -> Void) async throws {
        switch kind {
        case .inMemory:
            try await body(InMemoryDocumentStore())
        case .lmdb:
            let directory = StoreDirectory()
            defer { directory.remove() }
            let store = try LMDBDocumentStore(path: directory.path)
            defer { store.close() }
            try await body(store)
        }
    }

    static func key(_ collection: String, _ id: String) -> DocumentKey { try! DocumentKey(collection: collection, id: id) }

    @Test(arguments: Kind.allCases)
    func putThenGetReturnsTheValueWithIncreasingVersions(_ kind: Kind) async throws {
        try await Self.withStore(kind) { store in
            let first = try store.put(Self.key("beacons", "b1"), Array("one".utf8))
            let second = try store.put(Self.key("beacons", "b1"), Array("two".utf8))
            #expect(second.version > first.version)
            let read = try #require(try store.get(Self.key("beacons", "b1")))
            #expect(read.value == Array("two".utf8))
            #expect(read.version == second.version)
            #expect(try store.get(Self.key("beacons", "missing")) == nil)
            #expect(try store.document(Self.key("tracks", "b1")) == nil)
        }
    }

    @Test(arguments: Kind.allCases)
    func deleteLeavesATombstone(_ kind: Kind) async throws {
        try await Self.withStore(kind) { store in
            let key = Self.key("commands", "c1")
            try store.put(key, [1, 2, 3])
            let tombstone = try store.delete(key)
            #expect(tombstone.isTombstone && tombstone.value.isEmpty)
            #expect(try store.get(key) == nil)
            #expect(try store.document(key)?.isTombstone == true)
            #expect(try store.list("commands", after: nil, limit: 10).documents.isEmpty)
            #expect(try store.scan("commands").map(\.isTombstone) == [true])
        }
    }

    @Test(arguments: Kind.allCases)
    func tombstoneCanKeepTheEnginesRecordAndBeRevived(_ kind: Kind) async throws {
        try await Self.withStore(kind) { store in
            let key = Self.key("beacons", "b1")
            let live = try store.put(key, [1, 2, 3])
            let changes = store.changes()
            let tombstone = try store.apply([.tombstone(key, [9, 9], ifVersion: live.version)], origin: .remote(peer: "p"))[0]
            #expect(tombstone.isTombstone && tombstone.value == [9, 9] && tombstone.version > live.version)
            #expect(try store.get(key) == nil)
            #expect(try store.document(key) == tombstone)
            #expect(try store.list("beacons", after: nil, limit: 10).documents.isEmpty)
            #expect(try store.scan("beacons") == [tombstone])
            let statistics = try store.statistics()
            #expect(statistics.liveDocuments == 0 && statistics.tombstones == 1)
            var iterator = changes.makeAsyncIterator()
            guard case .changed(let change)? = await iterator.next() else { Issue.record("no change event"); return }
            #expect(change.key == key && change.kind == .delete && change.version == tombstone.version && change.origin == .remote(peer: "p"))
            // A stale condition fails; a put revives the key.
            #expect(throws: StorageError.self) { try store.apply([.tombstone(key, [], ifVersion: live.version)], origin: .local) }
            try store.put(key, [4])
            #expect(try store.get(key)?.value == [4])
        }
    }

    @Test(arguments: Kind.allCases)
    func batchesAreAtomic(_ kind: Kind) async throws {
        try await Self.withStore(kind) { store in
            let a = Self.key("tracks", "a")
            let b = Self.key("tracks", "b")
            let original = try store.put(a, [1])
            // The second operation's condition fails: nothing of the batch may be applied.
            #expect {
                try store.apply([.put(b, [2]), .put(a, [3], ifVersion: original.version + 100)], origin: .local)
            } throws: { ($0 as? StorageError)?.code == .versionConflict }
            #expect(try store.get(b) == nil)
            #expect(try store.get(a)?.value == [1])
            let written = try store.apply([.put(b, [2]), .put(a, [3], ifVersion: original.version), .delete(b)], origin: .local)
            #expect(written.map(\.isTombstone) == [false, false, true])
            #expect(try store.get(a)?.value == [3])
            #expect(try store.document(b)?.isTombstone == true)
        }
    }

    @Test(arguments: Kind.allCases)
    func conditionalWritesCompareVersions(_ kind: Kind) async throws {
        try await Self.withStore(kind) { store in
            let key = Self.key("nodes", "n1")
            let created = try store.put(key, [1], ifVersion: 0)  // create-only
            #expect(throws: StorageError.self) { try store.put(key, [2], ifVersion: 0) }
            let updated = try store.put(key, [2], ifVersion: created.version)
            #expect(throws: StorageError.self) { try store.delete(key, ifVersion: created.version) }
            try store.delete(key, ifVersion: updated.version)
        }
    }

    @Test(arguments: Kind.allCases)
    func listingPagesInStableIDOrderWithoutTombstones(_ kind: Kind) async throws {
        try await Self.withStore(kind) { store in
            let ids = (0..<25).map { String(format: "doc-%02d", $0) }
            try store.apply(ids.shuffled().map { .put(Self.key("beacons", $0), Array($0.utf8)) }, origin: .local)
            try store.put(Self.key("beacont", "other-collection"), [0])  // a neighbouring collection name
            try store.put(Self.key("beacon", "prefix-collection"), [0])
            try store.delete(Self.key("beacons", "doc-07"))
            var seen: [String] = []
            var cursor: String?
            repeat {
                let page = try store.list("beacons", after: cursor, limit: 10)
                #expect(page.documents.count <= 10)
                seen += page.documents.map(\.key.id)
                cursor = page.nextCursor
            } while cursor != nil
            #expect(seen == ids.filter { $0 != "doc-07" })
            #expect(try store.list("beacons", after: "doc-23", limit: 10).documents.map(\.key.id) == ["doc-24"])
            #expect(try store.list("empty", after: nil, limit: 10) == DocumentPage(documents: [], nextCursor: nil))
            #expect(try store.collections() == ["beacon", "beacons", "beacont"])
        }
    }

    @Test(arguments: Kind.allCases)
    func scanCoversEveryCollectionInKeyOrder(_ kind: Kind) async throws {
        try await Self.withStore(kind) { store in
            try store.put(Self.key("b", "2"), [2])
            try store.put(Self.key("a", "1"), [1])
            try store.put(Self.key("b", "1"), [1])
            #expect(try store.scan(nil).map(\.key.description) == ["a/1", "b/1", "b/2"])
            #expect(try store.scan("b").count == 2)
            let stats = try store.statistics()
            #expect(stats == StoreStatistics(liveDocuments: 3, tombstones: 0, valueBytes: 3))
        }
    }

    @Test(arguments: Kind.allCases)
    func subscribersSeeCommittedChangesInOrderWithOrigin(_ kind: Kind) async throws {
        try await Self.withStore(kind) { store in
            let changes = store.changes()
            try store.put(Self.key("alerts", "x"), [1])
            try store.apply([.put(Self.key("alerts", "y"), [2]), .delete(Self.key("alerts", "x"))], origin: .remote(peer: "peat-mesh-1"))
            var iterator = changes.makeAsyncIterator()
            let events = [await iterator.next(), await iterator.next(), await iterator.next()]
            let received = events.compactMap { event -> DocumentChange? in
                if case .changed(let change)? = event { return change }
                return nil
            }
            #expect(received.map(\.key.id) == ["x", "y", "x"])
            #expect(received.map(\.kind) == [.put, .put, .delete])
            #expect(received.map(\.origin) == [.local, .remote(peer: "peat-mesh-1"), .remote(peer: "peat-mesh-1")])
            #expect(received.map(\.version) == received.map(\.version).sorted())
        }
    }

    @Test(arguments: Kind.allCases)
    func slowSubscriberIsToldItOverflowed(_ kind: Kind) async throws {
        try await Self.withStore(kind) { store in
            let changes = store.changes(bufferSize: 3)
            for index in 0..<5 { try store.put(Self.key("beacons", "b\(index)"), [UInt8(index)]) }
            var iterator = changes.makeAsyncIterator()
            for _ in 0..<3 { if case .changed = await iterator.next() {} else { Issue.record("expected a change") } }
            try store.put(Self.key("beacons", "after"), [9])  // room again: the gap is announced first
            #expect(await iterator.next() == .overflowed)
            if case .changed(let change)? = await iterator.next() {
                #expect(change.key.id == "after")
            } else {
                Issue.record("expected the change after the overflow")
            }
        }
    }

    @Test(arguments: Kind.allCases)
    func failedBatchPublishesNothing(_ kind: Kind) async throws {
        try await Self.withStore(kind) { store in
            let changes = store.changes()
            #expect(throws: StorageError.self) {
                try store.apply([.put(Self.key("a", "1"), [1]), .delete(Self.key("a", "2"), ifVersion: 5)], origin: .local)
            }
            try store.put(Self.key("a", "3"), [3])
            var iterator = changes.makeAsyncIterator()
            if case .changed(let change)? = await iterator.next() { #expect(change.key.id == "3") } else { Issue.record("no change") }
        }
    }

    @Test(arguments: Kind.allCases)
    func metadataRoundTripsAndActorIDIsSixteenBytes(_ kind: Kind) async throws {
        try await Self.withStore(kind) { store in
            #expect(store.actorID.count == 16)
            #expect(try store.metadata("sync/peat-mesh-1") == nil)
            try store.setMetadata("sync/peat-mesh-1", [1, 2, 3])
            #expect(try store.metadata("sync/peat-mesh-1") == [1, 2, 3])
            try store.setMetadata("sync/peat-mesh-1", nil)
            #expect(try store.metadata("sync/peat-mesh-1") == nil)
        }
    }

    @Test(arguments: Kind.allCases)
    func compactionCandidatesAreLiveDocumentsAboveTheThreshold(_ kind: Kind) async throws {
        try await Self.withStore(kind) { store in
            try store.put(Self.key("beacons", "small"), [UInt8](repeating: 1, count: 10))
            try store.put(Self.key("beacons", "large"), [UInt8](repeating: 1, count: 100))
            try store.put(Self.key("beacons", "gone"), [UInt8](repeating: 1, count: 100))
            try store.delete(Self.key("beacons", "gone"))
            #expect(try store.documents(in: "beacons", largerThan: 50).map(\.key.id) == ["large"])
        }
    }

    @Test(arguments: [("", "x"), ("a/b", "x"), ("..", "x"), ("beacons", ""), ("beacons", "a\u{0}b"), ("beacons", "a\nb"),
                      ("beacons", String(repeating: "x", count: 256)), (String(repeating: "c", count: 129), "x")])
    func rejectsInvalidKeys(_ collection: String, _ id: String) {
        #expect { try DocumentKey(collection: collection, id: id) } throws: { ($0 as? StorageError)?.code == .invalidKey }
    }
}

/// A fresh temporary directory for one store.
struct StoreDirectory {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("peat-store-\(UUID().uuidString)").path

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
