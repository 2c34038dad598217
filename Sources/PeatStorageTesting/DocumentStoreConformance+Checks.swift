import PeatStorage

extension DocumentStoreConformance {
    static func putThenGet(_ store: any DocumentStore) async throws {
        let first = try store.put(key("beacons", "b1"), Array("one".utf8))
        let second = try store.put(key("beacons", "b1"), Array("two".utf8))
        try expect(second.version > first.version, "a second write has a higher version")
        let read = try store.get(key("beacons", "b1"))
        try expect(read?.value == Array("two".utf8) && read?.version == second.version, "get returns the last write and its version")
        try expect(try store.get(key("beacons", "missing")) == nil, "a key never written reads as nil")
        try expect(try store.document(key("tracks", "b1")) == nil, "keys are per collection")
    }

    static func deleteLeavesATombstone(_ store: any DocumentStore) async throws {
        let key = try key("commands", "c1")
        try store.put(key, [1, 2, 3])
        let tombstone = try store.delete(key)
        try expect(tombstone.isTombstone && tombstone.value.isEmpty, "delete returns an empty tombstone")
        try expect(try store.get(key) == nil, "get hides a tombstone")
        try expect(try store.document(key)?.isTombstone == true, "document(_:) returns the tombstone")
        try expect(try store.list("commands", after: nil, limit: 10).documents.isEmpty, "listing skips tombstones")
        try expect(try store.scan("commands").map(\.isTombstone) == [true], "scan returns tombstones")
    }

    static func tombstoneKeepsRecord(_ store: any DocumentStore) async throws {
        let key = try key("beacons", "b1")
        let live = try store.put(key, [1, 2, 3])
        let changes = store.changes()
        let tombstone = try store.apply([.tombstone(key, [9, 9], ifVersion: live.version)], origin: .remote(peer: "p"))[0]
        try expect(tombstone.isTombstone && tombstone.value == [9, 9] && tombstone.version > live.version, "a tombstone keeps its value")
        try expect(try store.get(key) == nil, "get hides it")
        try expect(try store.document(key) == tombstone, "document(_:) returns it with its value")
        try expect(try store.list("beacons", after: nil, limit: 10).documents.isEmpty, "listing skips it")
        try expect(try store.scan("beacons") == [tombstone], "scan returns it")
        let statistics = try store.statistics()
        try expect(statistics.liveDocuments == 0 && statistics.tombstones == 1, "statistics count it as a tombstone")
        var iterator = changes.makeAsyncIterator()
        let change = try await nextChange(&iterator)
        try expect(
            change.key == key && change.kind == .delete && change.version == tombstone.version && change.origin == .remote(peer: "p"),
            "subscribers see it as a delete with its origin")
        try expectFailure("a tombstone under a stale condition") { try store.apply([.tombstone(key, [], ifVersion: live.version)], origin: .local) }
        try store.put(key, [4])
        try expect(try store.get(key)?.value == [4], "a put revives the key")
    }

    static func batchesAreAtomic(_ store: any DocumentStore) async throws {
        let a = try key("tracks", "a")
        let b = try key("tracks", "b")
        let original = try store.put(a, [1])
        try expectFailure(
            "a batch whose second condition fails",
            {
                try store.apply([.put(b, [2]), .put(a, [3], ifVersion: original.version + 100)], origin: .local)
            }, where: { ($0 as? StorageError)?.code == .versionConflict })
        try expect(try store.get(b) == nil && store.get(a)?.value == [1], "nothing of a failed batch is applied")
        let written = try store.apply([.put(b, [2]), .put(a, [3], ifVersion: original.version), .delete(b)], origin: .local)
        try expect(written.map(\.isTombstone) == [false, false, true], "a batch returns its writes in order")
        try expect(try store.get(a)?.value == [3] && store.document(b)?.isTombstone == true, "every write of a batch is applied")
    }

    static func conditionalWrites(_ store: any DocumentStore) async throws {
        let key = try key("nodes", "n1")
        let created = try store.put(key, [1], ifVersion: 0)
        try expectFailure("a create-only put of an existing key") { try store.put(key, [2], ifVersion: 0) }
        let updated = try store.put(key, [2], ifVersion: created.version)
        try expectFailure("a delete at a stale version") { try store.delete(key, ifVersion: created.version) }
        try store.delete(key, ifVersion: updated.version)
    }

    static func listingPages(_ store: any DocumentStore) async throws {
        let ids = (0..<25).map { $0 < 10 ? "doc-0\($0)" : "doc-\($0)" }
        try store.apply(ids.reversed().map { .put(try key("beacons", $0), Array($0.utf8)) }, origin: .local)
        try store.put(key("beacont", "other-collection"), [0])  // a neighbouring collection name
        try store.put(key("beacon", "prefix-collection"), [0])
        try store.delete(key("beacons", "doc-07"))
        var seen: [String] = []
        var cursor: String?
        repeat {
            let page = try store.list("beacons", after: cursor, limit: 10)
            try expect(page.documents.count <= 10, "a page holds at most its limit")
            seen += page.documents.map(\.key.id)
            cursor = page.nextCursor
        } while cursor != nil
        try expect(seen == ids.filter { $0 != "doc-07" }, "pages cover the live documents of one collection in ID order")
        try expect(try store.list("beacons", after: "doc-23", limit: 10).documents.map(\.key.id) == ["doc-24"], "a cursor resumes after it")
        try expect(try store.list("empty", after: nil, limit: 10) == DocumentPage(documents: [], nextCursor: nil), "an empty collection lists nothing")
        try expect(try store.collections() == ["beacon", "beacons", "beacont"], "collections are listed in order")
    }

    static func scanCoversEverything(_ store: any DocumentStore) async throws {
        try store.put(key("b", "2"), [2])
        try store.put(key("a", "1"), [1])
        try store.put(key("b", "1"), [1])
        try expect(try store.scan(nil).map(\.key.description) == ["a/1", "b/1", "b/2"], "scan(nil) returns every key in order")
        try expect(try store.scan("b").count == 2, "scan(collection) returns one collection")
        try expect(try store.statistics() == StoreStatistics(liveDocuments: 3, tombstones: 0, valueBytes: 3), "statistics count documents and bytes")
    }

    static func subscribersSeeChanges(_ store: any DocumentStore) async throws {
        let changes = store.changes()
        try store.put(key("alerts", "x"), [1])
        try store.apply([.put(key("alerts", "y"), [2]), .delete(key("alerts", "x"))], origin: .remote(peer: "peat-mesh-1"))
        var iterator = changes.makeAsyncIterator()
        var received: [DocumentChange] = []
        for _ in 0..<3 { received.append(try await nextChange(&iterator)) }
        try expect(received.map(\.key.id) == ["x", "y", "x"], "changes arrive in commit order")
        try expect(received.map(\.kind) == [.put, .put, .delete], "changes say put or delete")
        try expect(received.map(\.origin) == [.local, .remote(peer: "peat-mesh-1"), .remote(peer: "peat-mesh-1")], "changes carry their origin")
        try expect(received.map(\.version) == received.map(\.version).sorted(), "versions grow")
    }

    static func slowSubscriberOverflows(_ store: any DocumentStore) async throws {
        let changes = store.changes(bufferSize: 3)
        for index in 0..<5 { try store.put(key("beacons", "b\(index)"), [UInt8(index)]) }
        var iterator = changes.makeAsyncIterator()
        for _ in 0..<3 { _ = try await nextChange(&iterator) }
        try store.put(key("beacons", "after"), [9])  // room again: the gap is announced first
        try expect(await iterator.next() == .overflowed, "the missed changes are announced")
        try expect(try await nextChange(&iterator).key.id == "after", "then changes resume")
    }

    static func failedBatchPublishesNothing(_ store: any DocumentStore) async throws {
        let changes = store.changes()
        try expectFailure("a batch with a failing condition") {
            try store.apply([.put(key("a", "1"), [1]), .delete(key("a", "2"), ifVersion: 5)], origin: .local)
        }
        try store.put(key("a", "3"), [3])
        var iterator = changes.makeAsyncIterator()
        try expect(try await nextChange(&iterator).key.id == "3", "the failed batch published no change")
    }

    static func metadataRoundTrips(_ store: any DocumentStore) async throws {
        try expect(store.actorID.count == 16, "the actor ID is 16 bytes")
        try expect(try store.metadata("sync/peat-mesh-1") == nil, "unset metadata is nil")
        try store.setMetadata("sync/peat-mesh-1", [1, 2, 3])
        try expect(try store.metadata("sync/peat-mesh-1") == [1, 2, 3], "metadata reads back")
        try store.setMetadata("sync/peat-mesh-1", nil)
        try expect(try store.metadata("sync/peat-mesh-1") == nil, "nil removes metadata")
    }

    static func compactionCandidates(_ store: any DocumentStore) async throws {
        try store.put(key("beacons", "small"), [UInt8](repeating: 1, count: 10))
        try store.put(key("beacons", "large"), [UInt8](repeating: 1, count: 100))
        try store.put(key("beacons", "gone"), [UInt8](repeating: 1, count: 100))
        try store.delete(key("beacons", "gone"))
        try expect(try store.documents(in: "beacons", largerThan: 50).map(\.key.id) == ["large"], "only live documents above the threshold")
    }
}
