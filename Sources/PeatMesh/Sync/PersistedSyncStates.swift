import PeatCRDT
package import PeatStorage

/// What one peer confirmed, per document, kept in the store's metadata between sessions
/// (`mesh.sync.<device>`), valid only for the peer's store incarnation that confirmed it.
///
///     [1][incarnation: 16 bytes][count] then per document: collection, id, SyncState.persistentBytes()
package struct PersistedSyncStates: Equatable, Sendable {
    static let formatVersion: UInt8 = 1

    package var incarnation: [UInt8]
    package var states: [DocumentKey: [UInt8]]

    package init(incarnation: [UInt8], states: [DocumentKey: [UInt8]]) {
        self.incarnation = incarnation
        self.states = states
    }

    package func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 32 + states.count * 48)
        w.byte(Self.formatVersion)
        w.raw(incarnation)
        w.uleb(states.count)
        // Key order, so equal states always encode to equal bytes.
        for key in states.keys.sorted() {
            w.string(key.collection)
            w.string(key.id)
            w.data(states[key] ?? [])
        }
        return w.bytes
    }

    /// Decodes `encoded()` output.
    /// - Throws: `MeshError` with `.storage` for anything malformed.
    package init(decoding bytes: [UInt8]) throws(MeshError) {
        do throws(PeatCRDTError) {
            var r = ByteReader(bytes)
            guard try r.byte() == Self.formatVersion else { throw ByteReader.malformed("persisted sync state version") }
            incarnation = Array(try r.raw(16))
            let n = try r.count(minimumItemSize: 3)
            var states: [DocumentKey: [UInt8]] = [:]
            for _ in 0..<n {
                let key = try MeshMessage.key(&r)
                let state = try r.data()
                if let key { states[key] = state }
            }
            guard r.isAtEnd else { throw ByteReader.malformed("trailing bytes") }
            self.states = states
        } catch {
            throw MeshError(code: .storage, message: "malformed persisted sync state: \(error.message)", cause: error)
        }
    }
}
