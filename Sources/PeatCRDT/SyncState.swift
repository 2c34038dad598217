import Crypto

/// What one replica knows about one peer for one document: the state machine of the sync protocol.
///
/// Create one per (peer, document) when a connection opens; discard it when the connection closes
/// (the protocol assumes the transport delivers messages in order and reports loss by closing).
/// `Document.generateSyncMessage(_:mode:)` returns the next message to send or `nil` when the peer
/// needs nothing; `Document.receiveSyncMessage(_:_:mode:)` consumes the peer's messages. Two replicas
/// that alternate these until both return `nil` hold identical state. When they already agree, that
/// takes one small summary each way.
public struct SyncState: Sendable, Equatable {
    /// The peer's version vector, as far as we know (what it told us, plus what we sent it).
    public private(set) var theirVersion: VersionVector? = nil
    /// Our version as last announced.
    var sentVersion: VersionVector? = nil
    /// Our version as of the last changes we sent: the peer has (or will have) everything in it.
    var deliveredVersion: VersionVector? = nil
    /// LatestOnly: the peer's and our last announced snapshot digests, and the state we last sent.
    var theirDigest: [UInt8]? = nil
    var sentDigest: [UInt8]? = nil
    var sentSnapshotOfState: UInt64? = nil

    public init() {}

    /// The document was decoded again (a new in-memory copy): forgets what only made sense for the
    /// earlier copy (which of its states a snapshot was sent of) and keeps what is about content —
    /// versions and digests sent, delivered and confirmed — so a reload does not make the replicas
    /// announce again what they already told each other.
    public mutating func forgetCopy() {
        sentSnapshotOfState = nil
    }

    mutating func learned(_ v: VersionVector) { theirVersion = theirVersion?.merged(with: v) ?? v }
    mutating func sent(_ v: VersionVector, withChanges: Bool) {
        sentVersion = v
        if withChanges { deliveredVersion = v }
    }
}

/// Sync messages: one format byte, one kind byte, then the kind's body.
enum SyncMessage {
    static let version: UInt8 = 1
    /// Version vector, then a change batch (possibly absent).
    static let history: UInt8 = 0
    /// Snapshot digest, then a LatestOnly snapshot (possibly absent).
    static let latest: UInt8 = 1
    /// Version vector and heads, then a snapshot standing in for history the sender no longer has.
    static let historySnapshot: UInt8 = 2
}

extension Document {
    /// The LatestOnly snapshot and its 16-byte digest, rebuilt only after the state changed: periodic
    /// anti-entropy between replicas in sync costs a comparison, not an encoding and a hash.
    func latestSnapshotAndDigest() -> (snapshot: [UInt8], digest: [UInt8]) {
        commit()
        if let cached = snapshotCache, cached.stateVersion == stateVersion { return (cached.snapshot, cached.digest) }
        let snapshot = latestSnapshot()
        let digest = Array(SHA256.hash(data: snapshot).prefix(16))
        snapshotCache = (stateVersion, snapshot, digest)
        return (snapshot, digest)
    }

    /// The compact (format 2) snapshot, rebuilt only after the state changed: every peer of a session
    /// on mesh protocol 2 is sent the same bytes.
    func latestCompactSnapshot() -> [UInt8] {
        commit()
        if let cached = compactSnapshotCache, cached.stateVersion == stateVersion { return cached.snapshot }
        let snapshot = latestSnapshot(compact: true)
        compactSnapshotCache = (stateVersion, snapshot)
        return snapshot
    }

    /// The next message for the peer described by `state`, or `nil` when it needs nothing.
    /// `compactSnapshots`: LatestOnly snapshots in format 2 (`latestSnapshot(compact:)`), for a peer
    /// known to read it (this version or later).
    public func generateSyncMessage(_ state: inout SyncState, mode: SyncMode, compactSnapshots: Bool = false) -> [UInt8]? {
        commit()
        var w = ByteWriter(capacity: 64)
        w.byte(SyncMessage.version)
        switch mode {
        case .latestOnly:
            let (snapshot, digest) = latestSnapshotAndDigest()
            let theyDiffer = state.theirDigest != digest
            if theyDiffer, state.theirDigest != nil || state.sentDigest != nil, state.sentSnapshotOfState != stateVersion {
                w.byte(SyncMessage.latest)
                w.data(digest)
                w.data(compactSnapshots ? latestCompactSnapshot() : snapshot)
                state.sentDigest = digest
                state.sentSnapshotOfState = stateVersion
            } else if state.sentDigest != digest {
                w.byte(SyncMessage.latest)
                w.data(digest)
                state.sentDigest = digest
            } else {
                return nil
            }
        case .fullHistory, .windowedHistory:
            let ours = version
            let known = state.theirVersion.map { t in state.deliveredVersion.map { t.merged(with: $0) } ?? t }
            var withChanges = false
            if let known, missingChangeCount(since: known) > 0 {
                withChanges = true
                if let batch = encodeChanges(since: known) {
                    w.byte(SyncMessage.history)
                    ours.encode(into: &w)
                    w.data(batch)
                } else {
                    w.byte(SyncMessage.historySnapshot)
                    ours.encode(into: &w)
                    w.data(latestSnapshotAndDigest().snapshot)
                }
            } else if state.sentVersion != ours {
                w.byte(SyncMessage.history)
                ours.encode(into: &w)
                w.byte(0)
            } else {
                return nil
            }
            state.sent(ours, withChanges: withChanges)
        }
        return w.bytes
    }

    /// Consumes a message from the peer described by `state`.
    ///
    /// - Throws: `PeatCRDTError` for malformed messages or changes that do not fit; the document keeps
    ///   every change applied before the bad one.
    public func receiveSyncMessage(_ message: [UInt8], _ state: inout SyncState, mode: SyncMode) throws(PeatCRDTError) {
        var r = ByteReader(message)
        guard try r.byte() == SyncMessage.version else { throw PeatCRDTError(.unsupportedVersion, "sync message format") }
        let kind = try r.byte()
        switch kind {
        case SyncMessage.latest:
            guard case .latestOnly = mode else { throw PeatCRDTError(.invalidChange, "snapshot for a \(mode) document") }
            let digest = try r.data()
            guard digest.count == 16 else { throw ByteReader.malformed("digest length") }
            let snapshot = r.isAtEnd ? nil : try r.data()
            guard r.isAtEnd else { throw ByteReader.malformed("trailing bytes in sync message") }
            if let snapshot { try mergeLatestSnapshot(snapshot) }
            state.theirDigest = digest
            // The peer sent its state and this replica now holds exactly that: there is nothing to tell
            // it (no digest echo; it does not resend that state, see `sentSnapshotOfState`).
            if snapshot != nil, latestSnapshotAndDigest().digest == digest { state.sentDigest = digest }
        case SyncMessage.history, SyncMessage.historySnapshot:
            if case .latestOnly = mode { throw PeatCRDTError(.invalidChange, "history for a LatestOnly document") }
            let theirs = try VersionVector(from: &r)
            let body = try r.data()
            guard r.isAtEnd else { throw ByteReader.malformed("trailing bytes in sync message") }
            if kind == SyncMessage.history {
                if !body.isEmpty { try applyChanges(body) }
            } else {
                try mergeLatestSnapshot(body)
                adoptCoverage(theirs)
            }
            state.learned(theirs)
        default:
            throw ByteReader.malformed("unknown sync message kind \(kind)")
        }
    }

    /// After a snapshot stood in for history: treat the sender's version as covered (its effects are in
    /// the state), so its later changes apply on top; this replica now also lacks that history to serve.
    func adoptCoverage(_ theirs: VersionVector) {
        compact()
        for (actor, seq) in theirs.entries {
            let a = Int(index(of: actor))
            guard seq > seqs[a] else { continue }
            seqs[a] = seq
            historyBase[a] = seq
        }
        bumpStateVersion()
    }
}

extension SyncState {
    /// What the peer itself reported — its version vector (history modes) and its snapshot digest
    /// (LatestOnly) — in a compact form to keep between connections, so a reconnecting or restarted
    /// replica sends only what the peer lacks. Nothing sent but unconfirmed is kept: that is sent again.
    public func persistentBytes() -> [UInt8] {
        var w = ByteWriter(capacity: 40)
        w.byte(1)
        w.byte((theirVersion == nil ? 0 : 1) | (theirDigest == nil ? 0 : 2))
        theirVersion?.encode(into: &w)
        if let theirDigest { w.data(theirDigest) }
        return w.bytes
    }

    /// Restores `persistentBytes()` output. Use it only while the peer is the same store incarnation
    /// that reported it: a peer that lost its data no longer has what it reported.
    /// - Throws: `PeatCRDTError` on malformed input.
    public init(restoring bytes: [UInt8]) throws(PeatCRDTError) {
        var r = ByteReader(bytes)
        guard try r.byte() == 1 else { throw PeatCRDTError(.unsupportedVersion, "persisted sync state format") }
        let flags = try r.byte()
        guard flags & ~3 == 0 else { throw ByteReader.malformed("persisted sync state flags") }
        if flags & 1 != 0 { theirVersion = try VersionVector(from: &r) }
        if flags & 2 != 0 {
            let digest = try r.data()
            guard digest.count == 16 else { throw ByteReader.malformed("digest length") }
            theirDigest = digest
        }
        guard r.isAtEnd else { throw ByteReader.malformed("trailing bytes in persisted sync state") }
    }
}

extension Document {
    /// A 16-byte digest that two replicas share exactly when they hold the same state for `mode`:
    /// the LatestOnly snapshot digest, or a hash of the version vector for the history modes.
    /// Cached until the state changes, so comparing replicas is cheap.
    public func syncDigest(mode: SyncMode) -> [UInt8] {
        switch mode {
        case .latestOnly:
            return latestSnapshotAndDigest().digest
        case .fullHistory, .windowedHistory:
            commit()
            return Array(SHA256.hash(data: version.encoded()).prefix(16))
        }
    }
}
