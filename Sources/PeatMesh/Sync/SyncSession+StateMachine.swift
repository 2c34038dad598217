import PeatCRDT
package import PeatIdentity
package import PeatStorage
package import PeatTransport

extension SyncSession {
    /// The mesh protocol with one peer over one connection, as a value: frames and local events in,
    /// frames and outcomes out — the pattern of `FormationHandshake`.
    ///
    /// It holds everything the protocol keeps per peer: the hello exchange, the root digest both sides
    /// last agreed on, the control messages and documents waiting to be sent (in one lane per
    /// `SyncPriority`), each document's sync state, what the peer confirmed in earlier sessions, and
    /// large messages in parts both ways. It reaches documents only through the `DocumentRepository`
    /// it is handed, synchronously, so it runs without a network. A frame it rejects throws before
    /// anything changes (a part that breaks its transfer also drops what was held of it); the session
    /// then closes.
    ///
    /// Protocol 2 (`peat/sync/2`) sends every frame of a higher priority before one of a lower, and
    /// splits messages above `partSize` into parts that frames of higher priority overtake and that a
    /// later session resumes; protocol 1 (`peat/sync/1`, nodes of earlier versions) sends large
    /// messages as consecutive chunks. See docs/adr/0005-mesh-sync-protocol.md and 0008-ddil-sync.md.
    package struct StateMachine: Equatable {
        /// Protocol 1: the largest frame sent whole; larger ones travel as consecutive chunks.
        static let chunkSize = 1024 * 1024
        /// The largest message reassembled from chunks or parts.
        static let maximumMessageSize = 256 * 1024 * 1024
        /// Protocol 1: soft limit for the document messages of one frame.
        static let frameBudget = 256 * 1024
        /// Protocol 2: the largest piece of a message in one frame, and the soft limit for the document
        /// messages of one frame — 64 ms of a 256 kbit/s link, 256 ms of a 64 kbit/s one.
        static let partSize = 2048

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

        /// The documents and large messages of one priority waiting to be sent.
        struct Lane: Equatable {
            var documents = DistinctFIFO<DocumentKey>()
            /// A document message generated for a batch it did not fit: first in the next one.
            var carried: MeshMessage.DocumentMessage?
            var transfers = FIFO<OutboundTransfer>()
            /// Parts and document batches take turns, so one large document does not hold back the
            /// small ones of its priority.
            var partNext = false

            /// Whether document messages wait (queued keys or a carried message).
            var hasDocuments: Bool { !documents.isEmpty || carried != nil }
        }

        /// The peer's device.
        let peer: DeviceID
        let version: SyncProtocolVersion
        private let hello: [UInt8]
        private(set) var phase = Phase.awaitingHello
        private var helloSent = false
        private var controls = FIFO<MeshMessage>()
        private(set) var agreedRoot: [UInt8]?
        private var lanes = [Lane](repeating: Lane(), count: SyncPriority.allCases.count)
        /// Documents to send, not yet sorted into their lanes (that needs the repository).
        private var unsorted = DistinctFIFO<DocumentKey>()
        /// States in use this session.
        private var states: [DocumentKey: DocumentSyncState] = [:]
        /// What the peer confirmed in earlier sessions, decoded on first use.
        private var confirmed: [DocumentKey: [UInt8]] = [:]
        /// Whether anything the peer confirmed changed since `takeUnsavedStates()`.
        private var unsaved = false
        /// Protocol 1: a chunked message arriving, and the chunks of one leaving.
        private var reassembly: [UInt8] = []
        private var outboundChunks = FIFO<[UInt8]>()
        /// Protocol 2: the peer's unfinished large messages (kept between sessions by the coordinator).
        private(set) var held: HeldTransfers
        /// Protocol 2: how much of each of our large messages the peer said (in its hello) it holds.
        private var peerHolds: [TransferID: Int] = [:]

        package init(
            peer: DeviceID, localNodeID: String, incarnation: [UInt8], version: SyncProtocolVersion = .current, held: HeldTransfers = HeldTransfers()
        ) {
            self.peer = peer
            self.version = version
            self.held = version == .v1 ? HeldTransfers() : held
            let resume = version == .v1 ? nil : self.held.resumePoints
            self.hello = MeshMessage.hello(nodeID: localNodeID, incarnation: incarnation, resume: resume).encoded()
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
        ///   allow here; the machine is then unchanged (but for a broken transfer, dropped) and the
        ///   session should close.
        package mutating func receive(_ frame: [UInt8], documents repository: DocumentRepository) throws(MeshError) -> Outcome {
            let message = try MeshMessage(decoding: frame)
            switch message {
            case .chunk(let more, let bytes):
                guard version == .v1 else { throw Self.violation("a chunk on a protocol 2 session") }
                guard isSyncing else { throw Self.violation("a chunk before hello") }
                guard reassembly.count + bytes.count <= Self.maximumMessageSize else {
                    throw Self.violation("a chunked message exceeds \(Self.maximumMessageSize) bytes")
                }
                guard !more else {
                    reassembly += bytes
                    return .nothing
                }
                let whole = try Self.decodeInner(reassembly + bytes)
                let outcome = try handle(whole, repository)
                reassembly = []
                return outcome
            case .part(let id, let offset, let total, let bytes):
                guard version == .v2 else { throw Self.violation("a part on a protocol 1 session") }
                guard isSyncing else { throw Self.violation("a part before hello") }
                guard let whole = try held.receive(id: id, offset: offset, total: total, bytes: bytes, maximumMessageSize: Self.maximumMessageSize) else {
                    return .nothing
                }
                return try handle(try Self.decodeInner(whole), repository)
            default:
                guard reassembly.isEmpty else { throw Self.violation("a message arrived inside a chunked one") }
                return try handle(message, repository)
            }
        }

        /// A message reassembled from chunks or parts: neither a hello nor a piece itself.
        private static func decodeInner(_ bytes: [UInt8]) throws(MeshError) -> MeshMessage {
            let message = try MeshMessage(decoding: bytes)
            switch message {
            case .hello, .chunk, .part: throw violation("a chunk or part inside a reassembled message")
            default: return message
            }
        }

        private static func violation(_ what: String) -> MeshError {
            MeshError(code: .protocolViolation, message: what)
        }

        private mutating func handle(_ message: MeshMessage, _ repository: DocumentRepository) throws(MeshError) -> Outcome {
            guard case .syncing(let nodeID, _) = phase else {
                guard case .hello(let nodeID, let incarnation, let resume) = message else { throw Self.violation("the first message was not hello") }
                guard (resume == nil) == (version == .v1) else { throw Self.violation("a hello of another protocol version") }
                phase = .syncing(nodeID: nodeID, incarnation: incarnation)
                for point in resume ?? [] { peerHolds[point.id] = point.offset }
                confirmed = repository.confirmedStates(of: peer, incarnation: incarnation)
                offerRoot(repository.index, isReply: false)
                return .established(nodeID: nodeID)
            }
            let index = repository.index
            switch message {
            case .hello:
                throw Self.violation("a second hello")
            case .chunk, .part:
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
                enqueue(message.key)
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
            enqueue(key)
        }

        /// The document's state for this session, moved out so that changing it copies nothing.
        private mutating func takeState(_ key: DocumentKey) -> DocumentSyncState {
            if let state = states.removeValue(forKey: key) { return state }
            if let bytes = confirmed.removeValue(forKey: key) { return DocumentSyncState(confirmed: bytes) }
            return DocumentSyncState()
        }

        /// Queues a document for the lane of its collection's priority (sorted in when the next frame
        /// is chosen); waiting ones keep their place, and the message generated when it leaves is from
        /// its newest state (latest wins).
        private mutating func enqueue(_ key: DocumentKey) {
            unsorted.push(key)
        }

        // MARK: Local events

        /// Queues documents that changed on this node (written locally or received from another peer).
        mutating func documentsChanged(_ keys: some Sequence<DocumentKey>) {
            guard isSyncing else { return }  // the first root exchange covers everything before hello
            for key in keys { enqueue(key) }
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

        /// The next frame to send: our hello first; after the peer's hello, control messages, then the
        /// lanes from the highest priority down (protocol 1: the pieces of a chunked frame before
        /// anything else). Nil when there is nothing to send.
        package mutating func nextFrame(documents repository: DocumentRepository) -> [UInt8]? {
            guard helloSent else {
                helloSent = true
                return hello
            }
            guard isSyncing else { return nil }
            if version == .v1, let piece = outboundChunks.pop() { return piece }
            if let control = controls.pop() { return sized(control.encoded(), lane: SyncPriority.high.rawValue) }
            while let key = unsorted.pop() { lanes[repository.priority(of: key).rawValue].documents.push(key) }
            for lane in lanes.indices {
                if let frame = nextFrame(lane: lane, repository) { return frame }
            }
            return nil
        }

        private mutating func nextFrame(lane: Int, _ repository: DocumentRepository) -> [UInt8]? {
            if lanes[lane].partNext || !lanes[lane].hasDocuments, let part = nextPart(lane: lane) {
                lanes[lane].partNext = false
                return part
            }
            if let batch = documentBatch(lane: lane, repository) {
                lanes[lane].partNext = true
                return batch
            }
            // The batch became transfers only.
            return nextPart(lane: lane)
        }

        private mutating func nextPart(lane: Int) -> [UInt8]? {
            guard var transfer = lanes[lane].transfers.pop() else { return nil }
            let part = transfer.nextPart(size: Self.partSize)
            if !transfer.isFinished { lanes[lane].transfers.pushFront(transfer) }
            return part.encoded()
        }

        /// Document messages of one lane up to a frame's budget; a message too large for a frame alone
        /// becomes a transfer of the lane.
        private mutating func documentBatch(lane: Int, _ repository: DocumentRepository) -> [UInt8]? {
            let budget = version == .v1 ? Self.frameBudget : Self.partSize
            var batch: [MeshMessage.DocumentMessage] = []
            var size = 0
            if let carried = lanes[lane].carried {
                lanes[lane].carried = nil
                batch.append(carried)
                size += carried.encodedSize
            }
            while size < budget, let key = lanes[lane].documents.pop() {
                var state = takeState(key)
                let payload = repository.syncMessage(for: key, state: &state, compact: version >= .v2)
                states[key] = state
                guard let payload else { continue }
                let message = MeshMessage.DocumentMessage(key: key, payload: payload)
                if version == .v2, message.encodedSize > Self.partSize {
                    let transfer = makeTransfer(MeshMessage.documents([message]).encoded())
                    lanes[lane].transfers.push(transfer)
                } else if version == .v2, !batch.isEmpty, size + message.encodedSize > budget {
                    lanes[lane].carried = message
                    break
                } else {
                    batch.append(message)
                    size += message.encodedSize
                }
            }
            return batch.isEmpty ? nil : sized(MeshMessage.documents(batch).encoded(), lane: lane)
        }

        /// `frame` itself, or (too large for one frame) its first chunk with the others queued
        /// (protocol 1), or its first part with the transfer queued in `lane` (protocol 2).
        private mutating func sized(_ frame: [UInt8], lane: Int) -> [UInt8] {
            switch version {
            case .v1:
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
            case .v2:
                guard frame.count > Self.partSize else { return frame }
                var transfer = makeTransfer(frame)
                let part = transfer.nextPart(size: Self.partSize)
                if !transfer.isFinished { lanes[lane].transfers.pushFront(transfer) }
                return part.encoded()
            }
        }

        /// A transfer of `message`, resumed where the peer's hello said it stopped.
        private mutating func makeTransfer(_ message: [UInt8]) -> OutboundTransfer {
            let id = TransferID(of: message)
            return OutboundTransfer(message, id: id, resumingAt: peerHolds.removeValue(forKey: id) ?? 0)
        }

        // MARK: Kept between sessions

        /// What the peer sent of its unfinished transfers, moved out for its next session.
        mutating func takeHeldTransfers() -> HeldTransfers {
            defer { held = HeldTransfers() }
            return held
        }

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

extension MeshMessage.DocumentMessage {
    /// About what the message adds to a `documents` frame.
    var encodedSize: Int { payload.count + key.collection.utf8.count + key.id.utf8.count + 8 }
}
