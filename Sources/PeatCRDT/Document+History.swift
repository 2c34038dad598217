import Crypto

/// History: change hashes, applying remote changes in causal order, and change batches for sync.
extension Document {
    // MARK: Hashes

    /// The canonical encoding of one change — what its SHA-256 hash covers.
    ///
    /// Version byte, actor, seq, start op, time, sorted dependency hashes, the other actors the
    /// operations refer to (in order of first use), then the operations.
    func canonicalEncoding(ofLogIndex index: Int) -> [UInt8] {
        let c = log[index]
        var w = ByteWriter(capacity: 64 + c.ops.count * 8)
        w.byte(1)
        let actor = actors[Int(c.actor)]
        w.uint64BigEndian(actor.high)
        w.uint64BigEndian(actor.low)
        w.uleb(c.seq)
        w.uleb(c.startOp)
        w.sleb(c.time)
        var deps = c.deps.map { hashes[Int($0)] } + c.externalDeps
        deps.sort()
        w.uleb(deps.count)
        for d in deps { w.raw(d.bytes) }
        var local: [UInt32: UInt32] = [c.actor: 0]
        var others: [UInt32] = []
        func note(_ id: OpID) {
            if !id.isZero, local[id.actor] == nil {
                local[id.actor] = UInt32(others.count + 1)
                others.append(id.actor)
            }
        }
        for op in c.ops {
            note(op.obj)
            if case .seq(let e) = op.key { note(e) }
            op.pred.forEach(note)
        }
        w.uleb(others.count)
        for o in others {
            w.uint64BigEndian(actors[Int(o)].high)
            w.uint64BigEndian(actors[Int(o)].low)
        }
        w.uleb(c.ops.count)
        var own = c.startOp
        for op in c.ops {
            OpCodec.encode(op, own: own, actor: { local[$0]! }, into: &w)
            own += op.action.width
        }
        return w.bytes
    }

    static func sha256(_ bytes: [UInt8]) -> ChangeHash {
        let digest = SHA256.hash(data: bytes)
        return ChangeHash(bytes: Array(digest))!
    }

    /// Hashes the log up to and including `index` (each hash needs its dependencies' hashes first).
    func ensureHashes(through index: Int) {
        while hashes.count <= index {
            let i = hashes.count
            let h = Self.sha256(canonicalEncoding(ofLogIndex: i))
            hashes.append(h)
            hashIndex?[h] = Int32(i)
        }
    }

    func resolve(_ hash: ChangeHash) -> Int32? {
        if hashIndex == nil {
            hashIndex = [:]
            for (i, h) in hashes.enumerated() { hashIndex![h] = Int32(i) }
        }
        if let i = hashIndex![hash] { return i }
        if hashes.count < log.count {
            ensureHashes(through: log.count - 1)
            return hashIndex![hash]
        }
        return nil
    }

    /// The hashes of the current heads: changes no other change depends on yet.
    public var heads: [ChangeHash] {
        if let last = headIndices.max() { ensureHashes(through: Int(last)) }
        var out = headIndices.map { hashes[Int($0)] } + externalHeads.keys
        out.sort()
        return out
    }

    /// The canonical encoding of the change `seq` of `actor`, if it is in the history.
    public func changeEncoding(actor: ActorID, seq: UInt64) -> [UInt8]? {
        guard let i = logIndex(actor: actor, seq: seq) else { return nil }
        ensureHashes(through: Int(i))
        return canonicalEncoding(ofLogIndex: Int(i))
    }

    /// The hash of the change `seq` of `actor`, if it is in the history.
    public func changeHash(actor: ActorID, seq: UInt64) -> ChangeHash? {
        guard let i = logIndex(actor: actor, seq: seq) else { return nil }
        ensureHashes(through: Int(i))
        return hashes[Int(i)]
    }

    func logIndex(actor: ActorID, seq: UInt64) -> Int32? {
        guard let a = actorIndex[actor] else { return nil }
        return logIndex(actor: a, seq: seq)
    }

    func logIndex(actor a: UInt32, seq: UInt64) -> Int32? {
        let base = historyBase[Int(a)]
        guard seq > base, seq <= seqs[Int(a)] else { return nil }
        return actorLog[Int(a)][Int(seq - base - 1)]
    }

    // MARK: Batches

    /// Whether the history still holds every change above `version` (compaction may have dropped some).
    public func canServeChanges(since version: VersionVector) -> Bool {
        for (i, base) in historyBase.enumerated() where base > 0 {
            if version[actors[i]] < base { return false }
        }
        return true
    }

    /// A batch of every change this document has above `version`, in causal order; `nil` when
    /// compaction dropped some of them (send a snapshot instead) — an empty batch when none are missing.
    public func encodeChanges(since version: VersionVector) -> [UInt8]? {
        commit()
        guard canServeChanges(since: version) else { return nil }
        var missing: [Int32] = []
        for (a, actorID) in actors.enumerated() {
            let theirs = version[actorID]
            guard seqs[a] > theirs else { continue }
            let base = historyBase[a]
            let from = Int(max(theirs, base) - base)
            missing += actorLog[a][from...]
        }
        missing.sort()
        var encoder = ChangeBatchEncoder(actors: actors)
        encoder.append(missing.map { log[Int($0)] }) { i in (log[Int(i)].actor, log[Int(i)].seq) }
        return encoder.finished()
    }

    /// How many changes `version` is missing (0 when it has everything this document has).
    public func missingChangeCount(since version: VersionVector) -> UInt64 {
        var n: UInt64 = 0
        for (a, actorID) in actors.enumerated() where seqs[a] > version[actorID] { n += seqs[a] - version[actorID] }
        return n
    }

    /// Applies a batch of changes (from `encodeChanges(since:)` or `save()`), in any order relative
    /// to other batches: changes already present are skipped, changes whose dependencies are missing
    /// wait in a bounded queue until they arrive.
    ///
    /// - Returns: the number of changes applied now (queued ones applied later count then).
    /// - Throws: `PeatCRDTError` for malformed bytes or a change that does not fit the document;
    ///   changes before the bad one stay applied (each change is atomic), nothing after it is applied.
    @discardableResult
    public func applyChanges(_ batch: [UInt8]) throws(PeatCRDTError) -> Int {
        commit()
        var decoder = try ChangeBatchDecoder(batch)
        guard decoder.state == nil else { throw ByteReader.malformed("a saved document is not a change batch") }
        let map = mapping(for: decoder.actors)
        var applied = 0
        try decoder.forEachChange { (change) throws(PeatCRDTError) in
            let c = translate(change, map)
            switch try integrate(c) {
            case .applied: applied += 1
            case .duplicate: break
            case .notReady:
                guard queue.count < maximumQueuedChanges else {
                    throw PeatCRDTError(.invalidChange, "more than \(maximumQueuedChanges) changes wait for missing dependencies")
                }
                queue.append(c)
            }
        }
        if !queue.isEmpty, applied > 0 { applied += try drainQueue() }
        return applied
    }

    /// Changes waiting for missing dependencies.
    public var queuedChangeCount: Int { queue.count }

    /// How a batch's actor indices map to this document's (actors new to the document are added).
    struct ActorMapping {
        let indices: [UInt32]
        /// True when every index maps to itself (batches from this document's own saves): ops need no rewrite.
        let isIdentity: Bool
    }

    func mapping(for batchActors: [ActorID]) -> ActorMapping {
        let indices = batchActors.map { index(of: $0) }
        return ActorMapping(indices: indices, isIdentity: indices.enumerated().allSatisfy { $0.element == UInt32($0.offset) })
    }

    func translate(_ c: DecodedChange, _ mapping: ActorMapping) -> DecodedChange {
        let map = mapping.indices
        var t = c
        t.actor = map[Int(c.actor)]
        t.deps = c.deps.map { (map[Int($0.actor)], $0.seq) }
        guard !mapping.isIdentity else { return t }
        t.ops = c.ops.map { op in
            var o = op
            if !o.obj.isZero { o.obj.actor = map[Int(o.obj.actor)] }
            if case .seq(var e) = o.key, !e.isZero {
                e.actor = map[Int(e.actor)]
                o.key = .seq(e)
            }
            switch o.pred {
            case .none: break
            case .one(var p):
                p.actor = map[Int(p.actor)]
                o.pred = .one(p)
            case .many(let ps):
                o.pred = .many(ps.map { OpID(counter: $0.counter, actor: map[Int($0.actor)]) })
            }
            return o
        }
        return t
    }

    enum Integration { case applied, duplicate, notReady }

    /// Applies one change (document actor indices) if it is next for its actor and its dependencies are present.
    func integrate(_ c: DecodedChange) throws(PeatCRDTError) -> Integration {
        let a = Int(c.actor)
        if c.seq <= seqs[a] { return .duplicate }
        if c.seq != seqs[a] + 1 { return .notReady }
        var deps: [Int32] = []
        var external: [ChangeHash] = []
        for d in c.deps {
            guard seqs[Int(d.actor)] >= d.seq else { return .notReady }
            if let i = logIndex(actor: d.actor, seq: d.seq) {
                deps.append(i)
            } else if let h = droppedHash(actor: d.actor, seq: d.seq) {
                external.append(h)
            }
        }
        for h in c.externalDeps {
            if let i = resolve(h) {
                deps.append(i)
            } else if droppedHashes[h] != nil {
                external.append(h)
            } else {
                return .notReady
            }
        }
        // Validate every op before touching state, so a bad change leaves no trace. Only a change of
        // several ops needs to track what its earlier ops create.
        var own = c.startOp
        var created: [OpID: ObjectType] = [:]
        var createdDepth: [OpID: UInt8] = [:]
        var inserted = Set<OpID>()
        for op in c.ops {
            try validate(
                op, id: OpID(counter: own, actor: c.actor), created: &created, createdDepth: &createdDepth,
                inserted: &inserted, track: c.ops.count > 1)
            own += op.action.width
        }
        own = c.startOp
        for op in c.ops {
            apply(op, id: OpID(counter: own, actor: c.actor))
            own += op.action.width
        }
        if own - 1 > maxOp { maxOp = own - 1 }
        var stored = StoredChange(actor: c.actor, seq: c.seq, startOp: c.startOp, time: c.time, deps: deps, ops: c.ops)
        stored.externalDeps = external
        appendToLog(stored)
        // Per change, so state applied before a later change fails still counts as changed.
        bumpStateVersion()
        return .applied
    }

    func droppedHash(actor: UInt32, seq: UInt64) -> ChangeHash? {
        for (h, v) in droppedHashes where v.actor == actor && v.seq == seq { return h }
        return nil
    }

    func drainQueue() throws(PeatCRDTError) -> Int {
        var applied = 0
        var progress = true
        while progress, !queue.isEmpty {
            progress = false
            var waiting: [DecodedChange] = []
            for c in queue.sorted(by: { $0.startOp < $1.startOp }) {
                switch try integrate(c) {
                case .applied:
                    applied += 1
                    progress = true
                case .duplicate:
                    progress = true
                case .notReady:
                    waiting.append(c)
                }
            }
            queue = waiting
        }
        return applied
    }
}
