/// Saving, loading and compaction.
extension Document {
    /// Objects nest at most this deep; deeper structures are refused (bounded recursion everywhere).
    public static let maximumDepth = 64

    /// The whole document as bytes: its history as a change batch, preceded by the materialised state
    /// when the history alone does not rebuild it (compaction dropped history, or a LatestOnly
    /// snapshot was merged).
    public func save() -> [UInt8] {
        commit()
        var encoder = ChangeBatchEncoder(actors: actors)
        var state: [UInt8]? = nil
        if hasUnloggedState || historyBase.contains(where: { $0 > 0 }) { state = encodeState(&encoder) }
        encoder.append(log) { i in (log[Int(i)].actor, log[Int(i)].seq) }
        return encoder.finished(state: state)
    }

    /// Loads a document saved by `save()` (from any replica), to be written by `actor`.
    ///
    /// - Parameter actor: this incarnation's actor; it must not be one that wrote changes in `bytes`
    ///   under the same sequence numbers it will use (the store's per-incarnation actor guarantees that).
    /// - Throws: `PeatCRDTError` for malformed or inconsistent bytes.
    public convenience init(loading bytes: [UInt8], actor: ActorID) throws(PeatCRDTError) {
        self.init(actor: actor)
        var decoder = try ChangeBatchDecoder(bytes)
        let map = mapping(for: decoder.actors)
        if let state = decoder.state {
            try decodeState(state, map.indices)
            hasUnloggedState = true
            // History since the compaction point: already reflected in the state, kept for sync. Each
            // actor's changes continue its history base, up to the version the state section recorded.
            let stateSeqs = seqs
            try decoder.forEachChange { (change) throws(PeatCRDTError) in
                let c = translate(change, map)
                let a = Int(c.actor)
                guard c.seq == historyBase[a] + UInt64(actorLog[a].count) + 1, c.seq <= stateSeqs[a] else {
                    throw PeatCRDTError(.invalidChange, "saved history out of order")
                }
                var stored = StoredChange(
                    actor: c.actor, seq: c.seq, startOp: c.startOp, time: c.time,
                    deps: c.deps.compactMap { logIndex(actor: $0.actor, seq: $0.seq) }, ops: c.ops)
                stored.externalDeps = c.externalDeps
                appendToLog(stored)
            }
            guard seqs.indices.allSatisfy({ historyBase[$0] + UInt64(actorLog[$0].count) == stateSeqs[$0] }) else {
                throw PeatCRDTError(.invalidChange, "saved history ends before the saved state's version")
            }
        } else {
            try decoder.forEachChange { (change) throws(PeatCRDTError) in
                let c = translate(change, map)
                switch try integrate(c) {
                case .applied, .duplicate: break
                case .notReady: throw PeatCRDTError(.invalidChange, "saved change \(c.seq) misses a dependency")
                }
            }
        }
        bumpStateVersion()
    }

    /// Drops the history, keeping the materialised state exactly (op ids included, so later merges
    /// resolve as before) and the version vector (so peers do not resend what it covered).
    ///
    /// After compaction this document cannot send peers changes older than the compaction point;
    /// sync falls back to a state snapshot for a peer that needs them.
    public func compact() {
        commit()
        if !log.isEmpty { ensureHashes(through: log.count - 1) }
        for h in headIndices {
            let c = log[Int(h)]
            externalHeads[hashes[Int(h)]] = (c.actor, c.seq)
        }
        for (h, v) in externalHeads { droppedHashes[h] = v }
        for a in seqs.indices {
            historyBase[a] = seqs[a]
            actorLog[a] = []
        }
        log = []
        hashes = []
        hashIndex = nil
        headIndices = []
    }

    // MARK: State section

    func encodeState(_ encoder: inout ChangeBatchEncoder) -> [UInt8] {
        var w = ByteWriter(capacity: 256)
        func id(_ o: OpID) {
            w.uleb(o.counter)
            if !o.isZero { w.uleb(UInt64(encoder.batchIndex(o.actor))) }
        }
        w.uleb(maxOp)
        // Actors that never wrote (this replica's own, until it does) have nothing to record.
        let writers = actors.indices.filter { seqs[$0] > 0 }
        w.uleb(writers.count)
        for a in writers {
            w.uleb(UInt64(encoder.batchIndex(UInt32(a))))
            w.uleb(seqs[a])
            w.uleb(historyBase[a])
        }
        for table in [externalHeads, droppedHashes] {
            w.uleb(table.count)
            for (h, v) in table.sorted(by: { $0.key < $1.key }) {
                w.raw(h.bytes)
                w.uleb(UInt64(encoder.batchIndex(v.actor)))
                w.uleb(v.seq)
            }
        }
        w.uleb(fieldVersion.count)
        for (k, v) in fieldVersion.sorted(by: { $0.key < $1.key }) {
            w.string(k)
            id(v)
        }
        func slots(_ s: Slots?) {
            guard let s else { return w.uleb(0) }
            w.uleb(s.count)
            for slot in s.all {
                id(slot.id)
                switch slot.value {
                case .scalar(let v):
                    w.byte(0)
                    OpCodec.writeScalar(v, into: &w)
                case .object(let t):
                    w.byte(1 + t.rawValue)
                    object(slot.id)
                }
            }
        }
        func object(_ oid: OpID) {
            switch objects[oid]! {
            case .map(let m):
                w.uleb(m.entries.count)
                for (k, s) in m.entries.sorted(by: { $0.key < $1.key }) {
                    w.string(k)
                    slots(s)
                }
                w.uleb(m.tombstones.count)
                for (k, t) in m.tombstones.sorted(by: { $0.key < $1.key }) {
                    w.string(k)
                    id(t)
                }
            case .list(let l):
                w.uleb(l.sequence.totalCount)
                l.sequence.forEach { e in
                    id(e.id)
                    slots(e.slots)
                }
            case .text(let t):
                w.uleb(t.sequence.totalCount)
                t.sequence.forEach { e in
                    id(e.id)
                    w.uleb(UInt64(e.scalar.value) << 1 | (e.isVisible ? 1 : 0))
                }
            }
        }
        object(.zero)
        return w.bytes
    }

    func decodeState(_ bytes: [UInt8], _ map: [UInt32]) throws(PeatCRDTError) {
        var r = ByteReader(bytes)
        func bad(_ why: String) -> PeatCRDTError { ByteReader.malformed(why) }
        func actor() throws(PeatCRDTError) -> UInt32 {
            let a = try r.uleb()
            guard a < UInt64(map.count) else { throw bad("actor index out of range") }
            return map[Int(a)]
        }
        func id() throws(PeatCRDTError) -> OpID {
            let c = try r.uleb()
            if c == 0 { return .zero }
            return OpID(counter: c, actor: try actor())
        }
        // Seqs within the bound change batches put on them, so commits and later changes count on
        // from them without overflowing. The op counter may exceed it (a merged snapshot's nested
        // objects take ids beyond every version), but not by much: local edits then refuse to run.
        func counter(_ what: String, below limit: UInt64 = ChangeBatchDecoder.counterLimit) throws(PeatCRDTError) -> UInt64 {
            let value = try r.uleb()
            guard value < limit else { throw bad("\(what) out of range in state") }
            return value
        }
        maxOp = try counter("op counter", below: UInt64.max / 4 * 3)
        let n = try r.count(minimumItemSize: 3)
        for _ in 0..<n {
            let a = Int(try actor())
            seqs[a] = try counter("sequence number")
            historyBase[a] = try r.uleb()
            guard historyBase[a] <= seqs[a] else { throw bad("history base above version") }
        }
        for table in 0..<2 {
            let count = try r.count(minimumItemSize: 34)
            for _ in 0..<count {
                let h = ChangeHash(bytes: try r.raw(32))!
                let v = (try actor(), try counter("sequence number"))
                if table == 0 { externalHeads[h] = v } else { droppedHashes[h] = v }
            }
        }
        let fields = try r.count(minimumItemSize: 2)
        for _ in 0..<fields { fieldVersion[try r.string()] = try id() }
        func checkID(_ i: OpID) throws(PeatCRDTError) {
            guard !i.isZero, i.counter <= maxOp else { throw bad("op id out of range in state") }
        }
        func scalar() throws(PeatCRDTError) -> ScalarValue {
            guard let v = try OpCodec.readScalar(code: try r.byte(), from: &r) else { throw bad("not a scalar type") }
            return v
        }
        func slots(parent: OpID, field: String?, depth: Int) throws(PeatCRDTError) -> Slots? {
            let count = try r.count(minimumItemSize: 2)
            guard count > 0 else { return nil }
            var all: [Slot] = []
            for _ in 0..<count {
                let sid = try id()
                try checkID(sid)
                let tag = try r.byte()
                if tag == 0 {
                    all.append(Slot(id: sid, value: .scalar(try scalar())))
                } else {
                    guard let t = ObjectType(rawValue: tag - 1) else { throw bad("unknown object type") }
                    guard objects[sid] == nil else { throw bad("duplicate object id in state") }
                    createObject(t, id: sid, parent: parent, key: field)
                    try object(sid, depth: depth + 1)
                    all.append(Slot(id: sid, value: .object(t)))
                }
            }
            return self.slots(from: all)
        }
        func object(_ oid: OpID, depth: Int) throws(PeatCRDTError) {
            guard depth <= Self.maximumDepth else { throw bad("objects nested deeper than \(Self.maximumDepth)") }
            switch objects[oid]! {
            case .map(let m):
                let n = try r.count(minimumItemSize: 2)
                for _ in 0..<n {
                    let k = try r.string()
                    guard let s = try slots(parent: oid, field: k, depth: depth) else { throw bad("empty map entry") }
                    m.entries[k] = s
                }
                let t = try r.count(minimumItemSize: 2)
                for _ in 0..<t { m.tombstones[try r.string()] = try id() }
            case .list(let l):
                let n = try r.count(minimumItemSize: 2)
                for _ in 0..<n {
                    let eid = try id()
                    try checkID(eid)
                    guard !l.sequence.contains(eid) else { throw bad("duplicate element id") }
                    let s = try slots(parent: oid, field: nil, depth: depth)
                    let end = l.sequence.endPosition
                    l.sequence.insert(ListElement(id: eid, slots: s), at: end)
                }
            case .text(let t):
                let n = try r.count(minimumItemSize: 2)
                for _ in 0..<n {
                    let eid = try id()
                    try checkID(eid)
                    guard !t.sequence.contains(eid) else { throw bad("duplicate character id") }
                    let v = try r.uleb()
                    guard v >> 1 <= UInt64(UInt32.max), let scalar = Unicode.Scalar(UInt32(v >> 1)) else { throw bad("invalid character") }
                    let end = t.sequence.endPosition
                    t.sequence.insert(TextElement(id: eid, scalar: scalar, isVisible: v & 1 == 1), at: end)
                }
            }
        }
        try object(.zero, depth: 0)
        guard r.isAtEnd else { throw bad("trailing bytes in state") }
    }
}

extension Document {
    /// Drops, per actor, the oldest changes made before `cutoff` (milliseconds since the epoch) — the
    /// retention of `SyncMode.windowedHistory`. State is unchanged; peers that need dropped changes
    /// get a snapshot instead. Returns how many changes were dropped.
    @discardableResult
    public func dropHistory(before cutoff: Int64) -> Int {
        commit()
        guard !log.isEmpty else { return 0 }
        var dropCount = [Int](repeating: 0, count: actors.count)
        for a in actorLog.indices {
            var n = 0
            while n < actorLog[a].count, log[Int(actorLog[a][n])].time < cutoff { n += 1 }
            dropCount[a] = n
        }
        let total = dropCount.reduce(0, +)
        guard total > 0 else { return 0 }
        if total == log.count {
            compact()
            return total
        }
        ensureHashes(through: log.count - 1)
        var dropped = [Bool](repeating: false, count: log.count)
        for a in actorLog.indices {
            for k in 0..<dropCount[a] { dropped[Int(actorLog[a][k])] = true }
            if dropCount[a] > 0 {
                let last = Int(actorLog[a][dropCount[a] - 1])
                droppedHashes[hashes[last]] = (UInt32(a), log[last].seq)
            }
        }
        var newIndex = [Int32](repeating: -1, count: log.count)
        var newLog: [StoredChange] = []
        var newHashes: [ChangeHash] = []
        newLog.reserveCapacity(log.count - total)
        for (i, c) in log.enumerated() where !dropped[i] {
            newIndex[i] = Int32(newLog.count)
            var kept = c
            kept.deps = []
            for d in c.deps {
                if dropped[Int(d)] { kept.externalDeps.append(hashes[Int(d)]) } else { kept.deps.append(newIndex[Int(d)]) }
            }
            newLog.append(kept)
            newHashes.append(hashes[i])
        }
        for h in headIndices where dropped[Int(h)] {
            externalHeads[hashes[Int(h)]] = (log[Int(h)].actor, log[Int(h)].seq)
        }
        headIndices = headIndices.filter { !dropped[Int($0)] }.map { newIndex[Int($0)] }
        for a in actorLog.indices {
            historyBase[a] += UInt64(dropCount[a])
            actorLog[a] = actorLog[a][dropCount[a]...].map { newIndex[Int($0)] }
        }
        log = newLog
        hashes = newHashes
        hashIndex = nil
        return total
    }
}
