public import PeatStorage

/// The behaviour every `DocumentStore` must have, as checks an embedder runs against their own store
/// (`InMemoryDocumentStore` and `LMDBDocumentStore` run the same ones):
///
///     @Test(arguments: DocumentStoreConformance.checks)
///     func myStoreConforms(_ check: DocumentStoreConformance.Check) async throws {
///         try await check.run(on: MyDocumentStore(path: freshDirectory()))
///     }
///
/// A check throws `DocumentStoreConformance.Failure` naming what did not hold. It needs no test
/// framework, so it runs under Swift Testing, XCTest or a plain executable.
public enum DocumentStoreConformance {
    /// One behaviour, checked on a fresh, empty store.
    public struct Check: Sendable, CustomStringConvertible {
        public let name: String
        private let body: @Sendable (any DocumentStore) async throws -> Void

        init(_ name: String, _ body: @escaping @Sendable (any DocumentStore) async throws -> Void) {
            self.name = name
            self.body = body
        }

        /// Runs the check against `store`, which must be new and empty.
        /// - Throws: `Failure` for a behaviour that does not hold; the store's own errors where an
        ///   operation that must succeed fails.
        public func run(on store: any DocumentStore) async throws {
            try await body(store)
        }

        public var description: String { name }
    }

    /// A behaviour that did not hold.
    public struct Failure: Error, CustomStringConvertible {
        public let message: String
        public let line: UInt
        public var description: String { "DocumentStore conformance: \(message) (line \(line))" }
    }

    static func expect(_ condition: Bool, _ message: @autoclosure () -> String, line: UInt = #line) throws(Failure) {
        guard condition else { throw Failure(message: message(), line: line) }
    }

    static func expectFailure<T>(_ what: String, line: UInt = #line, _ body: () throws -> T, where predicate: (any Error) -> Bool = { _ in true }) throws {
        do {
            _ = try body()
        } catch {
            guard predicate(error) else { throw Failure(message: "\(what): failed with an unexpected error \(error)", line: line) }
            return
        }
        throw Failure(message: "\(what): succeeded, expected a failure", line: line)
    }

    static func key(_ collection: String, _ id: String) throws -> DocumentKey {
        try DocumentKey(collection: collection, id: id)
    }

    static func nextChange(_ iterator: inout AsyncStream<StoreEvent>.Iterator, line: UInt = #line) async throws -> DocumentChange {
        guard case .changed(let change)? = await iterator.next() else { throw Failure(message: "expected a change event", line: line) }
        return change
    }

    /// Every check, in a stable order.
    public static let checks: [Check] = [
        Check("put then get returns the value with increasing versions", putThenGet),
        Check("delete leaves a tombstone", deleteLeavesATombstone),
        Check("a tombstone keeps the engine's record and can be revived", tombstoneKeepsRecord),
        Check("batches are atomic", batchesAreAtomic),
        Check("conditional writes compare versions", conditionalWrites),
        Check("listing pages in stable ID order without tombstones", listingPages),
        Check("scan covers every collection in key order", scanCoversEverything),
        Check("subscribers see committed changes in order with their origin", subscribersSeeChanges),
        Check("a slow subscriber is told it overflowed", slowSubscriberOverflows),
        Check("a failed batch publishes nothing", failedBatchPublishesNothing),
        Check("metadata round-trips and the actor ID is 16 bytes", metadataRoundTrips),
        Check("compaction candidates are live documents above the threshold", compactionCandidates),
    ]
}
