import Foundation
import PeatStorageTesting
import Testing

@testable import PeatStorage

/// Both stores run the seam's conformance suite (`PeatStorageTesting`, the one embedders run).
struct DocumentStoreConformanceTests {
    @Test(arguments: DocumentStoreConformance.checks)
    func inMemoryStoreConforms(_ check: DocumentStoreConformance.Check) async throws {
        try await check.run(on: InMemoryDocumentStore())
    }

    @Test(arguments: DocumentStoreConformance.checks)
    func lmdbStoreConforms(_ check: DocumentStoreConformance.Check) async throws {
        let directory = StoreDirectory()
        defer { directory.remove() }
        let store = try LMDBDocumentStore(path: directory.path)
        defer { store.close() }
        try await check.run(on: store)
    }

    @Test(arguments: [
        ("", "x"), ("a/b", "x"), ("..", "x"), (".", "x"), ("beacons", ""), ("beacons", "a\u{0}b"), ("beacons", "a\nb"),
        ("beacons", "."), ("beacons", ".."), ("beacons", "a/b"), ("beacons", "/"), ("beacons", "\u{7f}"),
        ("beacons", String(repeating: "x", count: 256)), (String(repeating: "c", count: 129), "x"),
    ])
    func rejectsInvalidKeys(_ collection: String, _ id: String) {
        #expect { try DocumentKey(collection: collection, id: id) } throws: { ($0 as? StorageError)?.code == .invalidKey }
    }

    @Test(arguments: ["a..b", "...", ".hidden", "é😀", "x y", "100%", "?#&", String(repeating: "x", count: 255)])
    func acceptsOtherIDs(_ id: String) throws {
        #expect(try DocumentKey(collection: "beacons", id: id).id == id)
    }
}

/// A fresh temporary directory for one store.
struct StoreDirectory {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("peat-store-\(UUID().uuidString)").path

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
