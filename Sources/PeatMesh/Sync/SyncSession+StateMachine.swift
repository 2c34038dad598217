import PeatCRDT
package import PeatIdentity
package import PeatStorage

extension SyncSession {
    /// The mesh protocol with one peer over one connection, as a value: frames and local events in,
    /// frames and outcomes out — the pattern of `FormationHandshake`.
    ///
    /// It holds everything the protocol keeps per peer: the hello exchange, the root digest both sides
    /// last agreed on, the control messages and documents waiting to be sent, each document's sync
    /// state, what the peer confirmed in earlier sessions, and chunks in both directions. It reaches
    /// documents only through the `DocumentRepository` it is handed, synchronously, so it runs without
    /// a network. A frame it rejects throws before anything changes; the session then closes.
    package struct StateMachine: Equatable {
        /// The largest frame sent whole; larger ones travel as chunks.
        static let chunkSize = 1024 * 1024
        /// The largest message reassembled from chunks.
        static let maximumMessageSize = 256 * 1024 * 1024
        /// Soft limit for the document messages of one frame.
        static let frameBudget = 256 * 1024

        enum Phase: Equatable {
            /// Our hello may be sent; nothing else until the peer's arrives.
            case awaitingHello
            /// The peer said who it is.
            case syncing(nodeID: String, incarnation: [UInt8])
        }

        /// What a received frame means for the rest of the node.
        package enum Outcome: Equatable {
            case nothing
            /// The peer said hello: the session is established.
            case established(nodeID: String)
            /// The peer's messages changed these documents (already stored): tell the other peers.
            case changed([DocumentKey])
        }

        /// The peer's device.
        let peer: DeviceID
        private let hello: [UInt8]
        private(set) var phase = Phase.awaitingHello
        private var helloSent = false
        private var controls = FIFO<MeshMessage>()
        private(set) var agreedRoot: [UInt8]?
        private var documents = DistinctFIFO<DocumentKey>()
        /// States in use this session.
        private var states: [DocumentKey: DocumentSyncState] = [:]
        /// What the peer confirmed in earlier sessions, decoded on first use.
        private var confirmed: [DocumentKey: [UInt8]] = [:]
        /// Whether anything the peer confirmed changed since `takeUnsavedStates()`.
        private var unsaved = false
        private var reassembly: [UInt8] = []
        private var outboundChunks = FIFO<[UInt8]>()

        package init(peer: DeviceID, localNodeID: String, incarnation: [UInt8]) {
            self.peer = peer
            self.hello = MeshMessage.hello(nodeID: localNodeID, incarnation: incarnation).encoded()
        }

        /// The node ID the peer said in its hello.
        var peerNodeID: String? {
            if case .syncing(let nodeID, _) = phase { return nodeID }
            return nil
        }

        private var isSyncing: Bool { peerNodeID != nil }

        // MARK: Inbound

        /// Handles one frame from the peer.
        /// - Throws: `MeshError(.protocolViolation)` for a malformed frame or one the protocol does not
        ///   allow here; the machine is then unchanged and the session should close.
        package mutating func receive(_ frame: [UInt8], documents repository: DocumentRepository) throws(MeshError) -> Outcome {
            let message = try MeshMessage(decoding: frame)
            guard case .chunk(let more, let bytes) = message else {
                guard reassembly.isEmpty else { throw Self.violation("a message arrived inside a chunked one") }
                return try handle(message, repository)
            }
            guard isSyncing else { throw Self.violation("a chunk before hello") }
            guard reassembly.count + bytes.count <= Self.maximumMessageSize else {
                throw Self.violation("a chunked message exceeds \(Self.maximumMessageSize) bytes")
            }
            guard !more else {
                reassembly += bytes
                return .nothing
            }
            let whole = try MeshMessage(decoding: reassembly + bytes)
            let outcome = try handle(whole, repository)
            reassembly = []
            return outcome
        }

        private static func violation(_ what: String) -> MeshError {
            MeshError(code: .protocolViolation, message: what)
        }

        private mutating func handle(_ message: MeshMessage, _ repository: DocumentRepository) throws(MeshError) -> Outcome {
            guard case .syncing(let nodeID, _) = phase else {
                guard case .hello(let nodeID, let incarnation) = message else { throw Self.violation("the first message was not hello") }
                phase = .syncing(nodeID: nodeID, incarnation: incarnation)
                confirmed = repository.confirmedStates(of: peer, incarnation: incarnation)
                offerRoot(repository.index, isReply: false)
                return .established(nodeID: nodeID)
            }
            let index = repository.index
            switch message {
            case .hello:
                throw Self.violation("a second hello")
            case .chunk:
                throw Self.violation("a chunk inside a chunk")
            case .root(let digest, _, let isReply):
                let mine = index.root
                if digest == mine {
                    agreedRoot = mine
                    if !isReply { offerRoot(index, isReply: true) }
                } else {
                    controls.push(.groups(index.groupDigests))
                }
            case .groups(let theirs):
                let mine = index.groupDigests
                for group in mine.indices where theirs[group] != mine[group] {
                    controls.push(.buckets(group: UInt8(group), digests: index.bucketDigests(group: group)))
                }
            case .buckets(let group, let theirs):
                let mine = index.bucketDigests(group: Int(group))
                for offset in mine.indices where theirs[offset] != mine[offset] {
                    let bucket = Int(group) * MeshMessage.groupSize + offset
                    controls.push(.keys(bucket: UInt8(bucket), entries: index.entries(inBucket: bucket)))
                }
            case .keys(let bucket, let theirs, let isReply):
                let mine = index.entries(inBucket: Int(bucket))
                if !isReply { controls.push(.keys(bucket: bucket, entries: mine, isReply: true)) }
                var theirDigests: [DocumentKey: [UInt8]] = [:]
                for entry in theirs { theirDigests[entry.key] = entry.digest }
                for entry in mine where theirDigests.removeValue(forKey: entry.key) != entry.digest {
                    restartSync(entry.key)
                }
                for key in theirDigests.keys.sorted() { restartSync(key) }
            case .documents(let messages):
                return .changed(receiveDocuments(messages, from: nodeID, repository))
            }
            return .nothing
        }

        /// Applies the peer's document messages and stores what they changed in one batch; every
        /// document mentioned is queued for an answer.
        private mutating func receiveDocuments(
            _ messages: [MeshMessage.DocumentMessage], from nodeID: String, _ repository: DocumentRepository
        ) -> [DocumentKey] {
            var changed: [(key: DocumentKey, entry: DocumentCache.Entry)] = []
            var seen: Set<DocumentKey> = []
            for message in messages {
                var state = takeState(message.key)
                let entry = repository.receiveSyncMessage(message.payload, for: message.key, state: &state, from: nodeID)
                states[message.key] = state
                documents.push(message.key)
                if let entry, seen.insert(message.key).inserted { changed.append((message.key, entry)) }
            }
            unsaved = unsaved || !messages.isEmpty
            guard !changed.isEmpty, repository.persistReceived(changed, from: nodeID) else { return [] }
            return changed.map(\.key)
        }

        /// Anti-entropy found the document differs: start its sync over from what the peer confirmed,
        /// so the next message is at least a summary even if this side believed it had sent everything.
        private mutating func restartSync(_ key: DocumentKey) {
            var state = takeState(key)
            state.forgetSent()
            states[key] = state
            documents.push(key)
        }

        /// The document's state for this session, moved out so that changing it copies nothing.
        private mutating func takeState(_ key: DocumentKey) -> DocumentSyncState {
            if let state = states.removeValue(forKey: key) { return state }
            if let bytes = confirmed.removeValue(forKey: key) { return DocumentSyncState(confirmed: bytes) }
            return DocumentSyncState()
        }

        // MARK: Local events

        /// Queues documents that changed on this node (written locally or received from another peer).
        mutating func documentsChanged(_ keys: some Sequence<DocumentKey>) {
            guard isSyncing else { return }  // the first root exchange covers everything before hello
            for key in keys { documents.push(key) }
        }

        /// The periodic anti-entropy pass: offers the root digest only when it moved since both sides
        /// last agreed, so peers in sync exchange nothing. Returns true when there is something to send.
        mutating func antiEntropyTick(index: DocumentIndex) -> Bool {
            guard isSyncing, agreedRoot != index.root, !controls.contains(where: \.isRoot) else { return false }
            offerRoot(index, isReply: false)
            return true
        }

        private mutating func offerRoot(_ index: DocumentIndex, isReply: Bool) {
            controls.push(.root(digest: index.root, documents: index.count, isReply: isReply))
        }

        // MARK: Outbound

        /// The next frame to send: our hello first; after the peer's hello, pieces of a chunked frame,
        /// then control messages, then a batch of document messages. Nil when there is nothing to send.
        package mutating func nextFrame(documents repository: DocumentRepository) -> [UInt8]? {
            guard helloSent else {
                helloSent = true
                return hello
            }
            guard isSyncing else { return nil }
            if let piece = outboundChunks.pop() { return piece }
            if let control = controls.pop() { return chunked(control.encoded()) }
            var batch: [MeshMessage.DocumentMessage] = []
            var size = 0
            while size < Self.frameBudget, let key = documents.pop() {
                var state = takeState(key)
                let payload = repository.syncMessage(for: key, state: &state)
                states[key] = state
                if let payload {
                    batch.append(.init(key: key, payload: payload))
                    size += payload.count + key.collection.utf8.count + key.id.utf8.count + 8
                }
            }
            return batch.isEmpty ? nil : chunked(MeshMessage.documents(batch).encoded())
        }

        /// `frame` itself, or its first piece with the others queued when it exceeds a chunk.
        private mutating func chunked(_ frame: [UInt8]) -> [UInt8] {
            guard frame.count > Self.chunkSize else { return frame }
            var pieces: [[UInt8]] = []
            var offset = 0
            while offset < frame.count {
                let end = min(offset + Self.chunkSize, frame.count)
                pieces.append(MeshMessage.chunk(more: end < frame.count, bytes: Array(frame[offset..<end])).encoded())
                offset = end
            }
            for piece in pieces.dropFirst() { outboundChunks.push(piece) }
            return pieces[0]
        }

        // MARK: Persisted state

        /// What the peer confirmed, to keep for its next session; nil when nothing changed since the
        /// last call (or before hello).
        mutating func takeUnsavedStates() -> PersistedSyncStates? {
            guard unsaved, case .syncing(_, let incarnation) = phase else { return nil }
            unsaved = false
            var merged = confirmed
            for (key, state) in states { merged[key] = state.crdt.persistentBytes() }
            return PersistedSyncStates(incarnation: incarnation, states: merged)
        }
    }
}

extension MeshMessage {
    var isRoot: Bool {
        if case .root = self { return true }
        return false
    }
}
