import Logging
import PeatCRDT
import PeatIdentity
import PeatStorage

extension DocumentRepository {
    /// The document under `key` for a sync path: one that cannot be read is logged and skipped.
    private func loadForSync(_ key: DocumentKey) -> DocumentCache.Entry? {
        do {
            return try loadOrCreate(key)
        } catch {
            logger.error("Cannot sync a stored document", metadata: ["doc.key": "\(key)", "reason": "\(error.message)"])
            return nil
        }
    }

    /// The next CRDT sync message about `key` for a peer whose state is `state`; nil when the peer
    /// needs nothing. `compact`: the peer reads compact LatestOnly snapshots (protocol 2).
    func syncMessage(for key: DocumentKey, state: inout DocumentSyncState, compact: Bool = false) -> [UInt8]? {
        guard let entry = loadForSync(key) else { return nil }
        state.adopt(entry.generation)
        return entry.document.generateSyncMessage(&state.crdt, mode: modes.mode(for: key.collection), compactSnapshots: compact)
    }

    /// Applies a peer's CRDT sync message about `key` to the cached copy (not yet stored).
    ///
    /// A message that does not apply (another sync mode on the peer, a damaged change) is logged
    /// once per collection; the document is skipped and its sync starts over.
    /// - Returns: The copy when the message changed it: pass it to `persist(_:origin:)`.
    func receiveSyncMessage(_ payload: [UInt8], for key: DocumentKey, state: inout DocumentSyncState, from peer: String) -> DocumentCache.Entry? {
        guard let entry = loadForSync(key) else { return nil }
        state.adopt(entry.generation)
        let mode = modes.mode(for: key.collection)
        let before = entry.document.stateVersion
        do {
            try entry.document.receiveSyncMessage(payload, &state.crdt, mode: mode)
        } catch {
            if reportFailureOnce(key.collection) {
                logger.warning(
                    "A peer's sync message for a document does not apply",
                    metadata: ["peer.id": "\(peer)", "doc.key": "\(key)", "sync.mode": "\(mode)", "reason": "\(error)"])
            }
            state = DocumentSyncState()
        }
        return entry.document.stateVersion != before ? entry : nil
    }

    /// Stores what one frame of a peer's messages changed, in one atomic batch; a failure is logged
    /// (the changes are dropped with their copies and the peer sends them again).
    /// - Returns: Whether the changes are stored.
    func persistReceived(_ items: [(key: DocumentKey, entry: DocumentCache.Entry)], from peer: String) -> Bool {
        do {
            try persist(items, origin: .peer(peer))
            return true
        } catch {
            logger.error("Cannot store documents received from a peer", metadata: ["peer.id": "\(peer)", "reason": "\(error.message)"])
            return false
        }
    }

    // MARK: Persisted per-peer state

    static func metadataName(_ device: DeviceID) -> String { "mesh.sync.\(device.hex)" }

    /// What `device` confirmed in earlier sessions, when it is still the store incarnation
    /// `incarnation`; a peer whose store was recreated starts over.
    func confirmedStates(of device: DeviceID, incarnation: [UInt8]) -> [DocumentKey: [UInt8]] {
        guard let bytes = try? store.metadata(Self.metadataName(device)) else { return [:] }
        do {
            let persisted = try PersistedSyncStates(decoding: bytes)
            guard persisted.incarnation == incarnation else {
                logger.info("Peer has a new store incarnation; its sync state starts over", metadata: ["peer.device_id": "\(device)"])
                try? store.setMetadata(Self.metadataName(device), nil)
                return [:]
            }
            return persisted.states
        } catch {
            logger.warning("Discarding an unreadable persisted sync state", metadata: ["peer.device_id": "\(device)", "reason": "\(error.message)"])
            return [:]
        }
    }

    /// Keeps what a peer confirmed for its next session.
    func saveConfirmedStates(_ states: PersistedSyncStates, of device: DeviceID) {
        do {
            try store.setMetadata(Self.metadataName(device), states.encoded())
        } catch {
            logger.warning("Cannot persist a peer's sync state", metadata: ["peer.device_id": "\(device)", "reason": "\(error.message)"])
        }
    }
}
