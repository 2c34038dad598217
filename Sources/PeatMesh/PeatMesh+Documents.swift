public import PeatCRDT
import PeatStorage

extension PeatMesh {
    /// The live document `collection/id`, or nil.
    /// - Throws: `MeshError` (`.invalidKey`, `.storage`).
    public func document(_ collection: String, _ id: String) async throws(MeshError) -> MeshDocument? {
        try await coordinator.document(Self.key(collection, id))
    }

    /// One page of a collection's live documents, in ID order.
    public func documents(in collection: String, after cursor: String? = nil, limit: Int = 100) async throws(MeshError) -> MeshDocumentPage {
        guard DocumentKey.isValidCollection(collection) else {
            throw MeshError(code: .invalidKey, message: DocumentKey.collectionRule)
        }
        if let cursor, !DocumentKey.isValidCursor(cursor) {
            throw MeshError(code: .invalidKey, message: "the cursor is not a listing position (1-255 bytes without NUL)")
        }
        return try await coordinator.list(collection, after: cursor, limit: max(limit, 1))
    }

    /// Replaces (or creates) a document; the change reaches connected peers at once.
    /// - Parameter ifVersion: Only if the live document is at this version (0: only if there is none).
    /// - Throws: `MeshError` (`.versionConflict`, `.invalidDocument`, `.invalidKey`, `.storage`).
    @discardableResult
    public func put(_ collection: String, _ id: String, _ value: [String: JSON], ifVersion: UInt64? = nil) async throws(MeshError) -> MeshWriteResult {
        let result = try await coordinator.apply(.replace(value), to: Self.key(collection, id), ifVersion: ifVersion)
        guard let document = result.document else { throw MeshError(code: .storage, message: "the write did not produce a document") }
        return MeshWriteResult(document: document, created: result.created)
    }

    /// Applies an RFC 7396 merge patch to a live document.
    /// - Throws: `MeshError` (`.notFound`, `.versionConflict`, `.invalidDocument`, `.storage`).
    @discardableResult
    public func patch(_ collection: String, _ id: String, _ patch: [String: JSON], ifVersion: UInt64? = nil) async throws(MeshError) -> MeshDocument {
        let result = try await coordinator.apply(.mergePatch(patch), to: Self.key(collection, id), ifVersion: ifVersion)
        guard let document = result.document else { throw MeshError(code: .storage, message: "the patch did not produce a document") }
        return document
    }

    /// Deletes a live document: a tombstone every replica honours (a later `put` creates it again).
    /// - Returns: False when there was no live document.
    @discardableResult
    public func delete(_ collection: String, _ id: String, ifVersion: UInt64? = nil) async throws(MeshError) -> Bool {
        do {
            _ = try await coordinator.apply(.delete, to: Self.key(collection, id), ifVersion: ifVersion)
            return true
        } catch  where error.code == .notFound {
            return false
        }
    }

    /// Edits a document with the CRDT's own API (lists, text, counters); creates it when absent.
    /// - Returns: The document afterwards, nil if it is deleted.
    @discardableResult
    public func update(_ collection: String, _ id: String, _ body: @escaping @Sendable (Document) throws -> Void) async throws(MeshError) -> MeshDocument? {
        try await coordinator.update(Self.key(collection, id), body)
    }

    /// The key of `collection/id` under the one rule for names (`DocumentKey`), which the broker uses too.
    static func key(_ collection: String, _ id: String) throws(MeshError) -> DocumentKey {
        do {
            return try DocumentKey(collection: collection, id: id)
        } catch {
            throw MeshError(code: .invalidKey, message: error.message, cause: error)
        }
    }
}
