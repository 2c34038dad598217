import CLMDB
import Foundation
import Testing

@testable import PeatStorage

struct LMDBDocumentStoreTests {
    static func key(_ id: String) -> DocumentKey { try! DocumentKey(collection: "beacons", id: id) }

    @Test func reopenedStoreKeepsDocumentsActorIDAndVersions() throws {
        let directory = StoreDirectory()
        defer { directory.remove() }
        let actor: [UInt8]
        let written: StoredDocument
        do {
            let store = try LMDBDocumentStore(path: directory.path + "/nested/automerge")
            actor = store.actorID
            written = try store.put(Self.key("b1"), Array("persisted".utf8))
            try store.setMetadata("sync/peer", [7])
            store.close()
        }
        let reopened = try LMDBDocumentStore(path: directory.path + "/nested/automerge")
        defer { reopened.close() }
        #expect(reopened.actorID == actor)
        #expect(try reopened.get(Self.key("b1")) == written)
        #expect(try reopened.metadata("sync/peer") == [7])
        #expect(try reopened.put(Self.key("b2"), [1]).version > written.version)
    }

    @Test func emptyDataDirectoryGetsANewActorID() throws {
        let first = StoreDirectory()
        let second = StoreDirectory()
        defer {
            first.remove()
            second.remove()
        }
        let a = try LMDBDocumentStore(path: first.path)
        let b = try LMDBDocumentStore(path: second.path)
        defer {
            a.close()
            b.close()
        }
        #expect(a.actorID != b.actorID)
    }

    /// Writes raw bytes under a document key, bypassing the store (as disk corruption would).
    static func corrupt(_ path: String, key: DocumentKey, with bytes: [UInt8]) throws {
        let environment = try LMDBEnvironment(path: path, initialMapSize: 1 << 26, maximumMapSize: 1 << 26, maxDatabases: 4)
        defer { environment.close() }
        try environment.write { (transaction: borrowing LMDBEnvironment.Transaction) throws(StorageError) in
            let documents = try environment.openDatabase("documents", in: transaction)
            try transaction.put(documents, LMDBDocumentStore.encode(key), bytes)
        }
    }

    @Test(arguments: ["flipped bit", "truncated", "empty", "moved"])
    func corruptValueIsReportedNotDecoded(_ damage: String) throws {
        let directory = StoreDirectory()
        defer { directory.remove() }
        var stored: [UInt8] = []
        do {
            let store = try LMDBDocumentStore(path: directory.path)
            try store.put(Self.key("good"), Array("intact value".utf8))
            try store.put(Self.key("victim"), Array("value that will be damaged".utf8))
            stored = StoredValueCodec.encode(
                payload: Array("value that will be damaged".utf8), version: 2, tombstone: false,
                key: LMDBDocumentStore.encode(Self.key("victim")))
            store.close()
        }
        var damaged = stored
        switch damage {
        case "flipped bit": damaged[25] ^= 0x04  // inside the payload
        case "truncated": damaged.removeLast(5)
        case "empty": damaged = []
        default:  // a valid value of another key, copied here
            damaged = StoredValueCodec.encode(
                payload: Array("intact value".utf8), version: 1, tombstone: false, key: LMDBDocumentStore.encode(Self.key("good")))
        }
        try Self.corrupt(directory.path, key: Self.key("victim"), with: damaged)
        let store = try LMDBDocumentStore(path: directory.path)
        defer { store.close() }
        #expect { try store.get(Self.key("victim")) } throws: { ($0 as? StorageError)?.code == .corruptValue }
        #expect { try store.scan("beacons") } throws: { ($0 as? StorageError)?.code == .corruptValue }
        #expect(try store.get(Self.key("good"))?.value == Array("intact value".utf8), "other documents stay readable")
        // The damaged document can be replaced by a good write.
        try store.put(Self.key("victim"), [1])
        #expect(try store.get(Self.key("victim"))?.value == [1])
    }

    @Test func otherDataFormatIsRefusedWithAClearError() throws {
        let directory = StoreDirectory()
        defer { directory.remove() }
        LMDBDocumentStore.closeAfterCreating(directory.path)
        let environment = try LMDBEnvironment(path: directory.path, initialMapSize: 1 << 26, maximumMapSize: 1 << 26, maxDatabases: 4)
        try environment.write { (transaction: borrowing LMDBEnvironment.Transaction) throws(StorageError) in
            let meta = try environment.openDatabase("meta", in: transaction)
            try transaction.put(meta, Array("format".utf8), [0, 0, 0, 9])
        }
        environment.close()
        #expect {
            try LMDBDocumentStore(path: directory.path)
        } throws: { error in
            guard let error = error as? StorageError else { return false }
            return error.code == .incompatibleFormat && error.message.contains("format 9")
        }
    }

    @Test func fullStoreFailsCleanlyAndKeepsWhatItHad() throws {
        let directory = StoreDirectory()
        defer { directory.remove() }
        var configuration = LMDBDocumentStore.Configuration()
        configuration.initialSize = 256 * 1024
        configuration.maximumSize = 1024 * 1024
        let store = try LMDBDocumentStore(path: directory.path, configuration: configuration)
        defer { store.close() }
        var written = 0
        var failure: StorageError?
        while failure == nil, written < 10_000 {
            do {
                try store.put(Self.key("doc-\(written)"), [UInt8](repeating: UInt8(written & 0xff), count: 4096))
                written += 1
            } catch {
                failure = error
            }
        }
        #expect(failure?.code == .mapFull)
        #expect(written > 64, "the map grew from 256 KiB before failing at 1 MiB")
        for index in [0, written / 2, written - 1] {
            #expect(try store.get(Self.key("doc-\(index)"))?.value.first == UInt8(index & 0xff))
        }
        #expect(try store.get(Self.key("doc-\(written)")) == nil)
        // Deleting makes no room in a tombstone design, but reads and metadata keep working.
        #expect(try store.statistics().liveDocuments == written)
    }

    @Test func readersSeeConsistentDataWhileAWriterRuns() async throws {
        let directory = StoreDirectory()
        defer { directory.remove() }
        let store = try LMDBDocumentStore(path: directory.path)
        defer { store.close() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for batch in 0..<50 {
                    // Each batch writes the same number into 10 documents atomically.
                    try store.apply((0..<10).map { .put(Self.key("d\($0)"), [UInt8(batch)]) }, origin: .local)
                }
            }
            for _ in 0..<4 {
                group.addTask {
                    for _ in 0..<200 {
                        let values = try store.scan("beacons").map { $0.value }
                        #expect(Set(values).count <= 1, "a reader saw half a batch")
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try store.get(Self.key("d3"))?.value == [49])
    }

    @Test func closedStoreRefusesCalls() throws {
        let directory = StoreDirectory()
        defer { directory.remove() }
        let store = try LMDBDocumentStore(path: directory.path)
        try store.checkReadable()
        store.close()
        #expect { try store.checkReadable() } throws: { ($0 as? StorageError)?.code == .closed }
        #expect { try store.get(Self.key("x")) } throws: { ($0 as? StorageError)?.code == .closed }
        #expect { try store.put(Self.key("x"), [1]) } throws: { ($0 as? StorageError)?.code == .closed }
    }

    @Test func dataDirectoryThatIsAFileIsAnError() throws {
        let directory = StoreDirectory()
        defer { directory.remove() }
        #expect(FileManager.default.createFile(atPath: directory.path, contents: Data([1])))
        #expect { try LMDBDocumentStore(path: directory.path) } throws: { ($0 as? StorageError)?.code == .io }
    }
}

extension LMDBDocumentStore {
    static func closeAfterCreating(_ path: String) {
        (try? LMDBDocumentStore(path: path))?.close()
    }
}

/// A store written by an earlier version may hold keys today's rule refuses (`.`, `..`, `/` in IDs):
/// it must still open, scan and list them, never report the store as corrupt.
struct LegacyKeyStoreTests {
    @Test func keysFromTheEarlierRuleStayReadable() throws {
        let directory = StoreDirectory()
        defer { directory.remove() }
        let legacy = [DocumentKey(stored: "beacons", id: "."), DocumentKey(stored: "beacons", id: "a/b")]
        do {
            let store = try LMDBDocumentStore(path: directory.path)
            defer { store.close() }
            try store.apply(legacy.map { .put($0, [1]) } + [.put(try DocumentKey(collection: "beacons", id: "ok"), [2])], origin: .local)
        }
        let store = try LMDBDocumentStore(path: directory.path)
        defer { store.close() }
        let scanned = try store.scan("beacons")
        #expect(scanned.map(\.key.id).sorted() == [".", "a/b", "ok"])
        #expect(scanned.filter { !$0.key.isValid }.count == 2)
        #expect(try store.list("beacons", after: nil, limit: 10).documents.count == 3)
        #expect(try store.get(legacy[0])?.value == [1])
    }
}
