import PeatStorage
import PeatStorageTesting
import Synchronization

/// A store of this service's own: the in-memory store, counting the writes it takes (a stand-in for
/// a store over the service's existing database).
final class CountingDocumentStore: DocumentStore {
    private let base = InMemoryDocumentStore()
    let writes = Atomic<Int>(0)

    var actorID: [UInt8] { base.actorID }

    func document(_ key: DocumentKey) throws(StorageError) -> StoredDocument? { try base.document(key) }

    func apply(_ operations: [WriteOperation], origin: ChangeOrigin) throws(StorageError) -> [StoredDocument] {
        let written = try base.apply(operations, origin: origin)
        writes.add(operations.count, ordering: .relaxed)
        return written
    }

    func list(_ collection: String, after cursor: String?, limit: Int) throws(StorageError) -> DocumentPage {
        try base.list(collection, after: cursor, limit: limit)
    }

    func scan(_ collection: String?) throws(StorageError) -> [StoredDocument] { try base.scan(collection) }
    func collections() throws(StorageError) -> [String] { try base.collections() }
    func changes(bufferSize: Int) -> AsyncStream<StoreEvent> { base.changes(bufferSize: bufferSize) }
    func metadata(_ name: String) throws(StorageError) -> [UInt8]? { try base.metadata(name) }
    func setMetadata(_ name: String, _ value: [UInt8]?) throws(StorageError) { try base.setMetadata(name, value) }
    func statistics() throws(StorageError) -> StoreStatistics { try base.statistics() }
}

let store = CountingDocumentStore()
let key = try DocumentKey(collection: "beacons", id: "edge-7")
try store.put(key, Array(#"{"lat":48.1}"#.utf8))
print("stored \(key) as version \(try store.get(key)!.version)")

for check in DocumentStoreConformance.checks {
    try await check.run(on: CountingDocumentStore())
    print("conforms: \(check)")
}
print("StoreExample: \(DocumentStoreConformance.checks.count) checks passed")
