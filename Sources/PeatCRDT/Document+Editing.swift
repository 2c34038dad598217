#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Local edits. Each is applied at once and added to the open change; `commit()` seals the change.
extension Document {
    func invalidOperation(_ why: String) -> PeatCRDTError { PeatCRDTError(.invalidOperation, why) }

    /// Refuses an edit of `width` op ids when the change it makes would not load again: the change
    /// batch decoder bounds seqs and op ids, and a document reaches that bound only after hostile input.
    func checkCounterSpace(_ width: UInt64) throws(PeatCRDTError) {
        guard maxOp < ChangeBatchDecoder.counterLimit - 1 - width, seqs[0] < ChangeBatchDecoder.counterLimit - 1 else {
            throw invalidOperation("the op counter or sequence number is exhausted")
        }
    }

    @inline(__always)
    func nextID(width: UInt64 = 1) throws(PeatCRDTError) -> OpID {
        try checkCounterSpace(width)
        let id = OpID(counter: maxOp + 1, actor: 0)
        if pending.isEmpty { pendingStart = id.counter }
        maxOp += width
        return id
    }

    func requireMap(_ object: ObjectID) throws(PeatCRDTError) -> (OpID, MapObject) {
        guard let id = opID(object), case .map(let m)? = objects[id] else { throw invalidOperation("\(object) is not a map") }
        return (id, m)
    }

    func requireList(_ object: ObjectID) throws(PeatCRDTError) -> (OpID, ListObject) {
        guard let id = opID(object), case .list(let l)? = objects[id] else { throw invalidOperation("\(object) is not a list") }
        return (id, l)
    }

    func requireText(_ object: ObjectID) throws(PeatCRDTError) -> (OpID, TextObject) {
        guard let id = opID(object), case .text(let t)? = objects[id] else { throw invalidOperation("\(object) is not a text") }
        return (id, t)
    }

    func checkDepth(_ parent: OpID) throws(PeatCRDTError) {
        guard Int(objectDepth[parent] ?? 0) < Self.maximumDepth else {
            throw invalidOperation("objects nested deeper than \(Self.maximumDepth)")
        }
    }

    func predOf(_ slots: Slots?) -> Pred {
        guard let slots else { return .none }
        if slots.others.isEmpty { return .one(slots.winner.id) }
        return .many(slots.all.map(\.id))
    }

    // MARK: Maps

    /// Writes a scalar under `key` of a map, superseding every value this replica sees there.
    public func put(_ object: ObjectID, _ key: String, _ value: ScalarValue) throws(PeatCRDTError) {
        let (obj, m) = try requireMap(object)
        let op = Op(obj: obj, key: .map(key), insert: false, action: .set(value), pred: predOf(m.entries[key]))
        let id = try nextID()
        pending.append(op)
        applyMapOp(m, obj: obj, key: key, id: id, action: op.action, pred: op.pred)
        bumpStateVersion()
    }

    /// Creates an empty map, list or text under `key` of a map and returns its id.
    @discardableResult
    public func putObject(_ object: ObjectID, _ key: String, _ type: ObjectType) throws(PeatCRDTError) -> ObjectID {
        let (obj, m) = try requireMap(object)
        try checkDepth(obj)
        let op = Op(obj: obj, key: .map(key), insert: false, action: .make(type), pred: predOf(m.entries[key]))
        let id = try nextID()
        pending.append(op)
        applyMapOp(m, obj: obj, key: key, id: id, action: op.action, pred: op.pred)
        bumpStateVersion()
        return objectID(id)
    }

    /// Removes `key` from a map (a no-op when absent).
    public func delete(_ object: ObjectID, _ key: String) throws(PeatCRDTError) {
        let (obj, m) = try requireMap(object)
        guard let slots = m.entries[key] else { return }
        let op = Op(obj: obj, key: .map(key), insert: false, action: .delete, pred: predOf(slots))
        let id = try nextID()
        pending.append(op)
        applyMapOp(m, obj: obj, key: key, id: id, action: .delete, pred: op.pred)
        bumpStateVersion()
    }

    /// Adds `delta` to the counter under `key` of a map.
    /// - Throws: `.invalidOperation` when the key does not hold a counter.
    public func increment(_ object: ObjectID, _ key: String, by delta: Int64) throws(PeatCRDTError) {
        let (obj, m) = try requireMap(object)
        guard let slots = m.entries[key], case .scalar(.counter) = slots.winner.value else {
            throw invalidOperation("\(key) does not hold a counter")
        }
        let op = Op(obj: obj, key: .map(key), insert: false, action: .increment(delta), pred: .one(slots.winner.id))
        let id = try nextID()
        pending.append(op)
        applyMapOp(m, obj: obj, key: key, id: id, action: op.action, pred: op.pred)
        bumpStateVersion()
    }

    // MARK: Lists

    private func listInsert(_ object: ObjectID, at index: Int, _ action: OpAction) throws(PeatCRDTError) -> OpID {
        let (obj, l) = try requireList(object)
        if case .make = action { try checkDepth(obj) }
        guard index >= 0, index <= l.sequence.visibleCount else {
            throw invalidOperation("index \(index) out of range 0...\(l.sequence.visibleCount)")
        }
        let reference = index == 0 ? OpID.zero : l.sequence.element(at: l.sequence.positionOfVisible(index - 1)).id
        let position = l.sequence.positionAfterVisible(index - 1)
        let id = try nextID()
        pending.append(Op(obj: obj, key: .seq(reference), insert: true, action: action, pred: .none))
        insertListElement(l, at: position, obj: obj, id: id, action: action)
        bumpStateVersion()
        return id
    }

    /// Inserts a scalar at `index` of a list (`index == count` appends).
    public func insert(_ object: ObjectID, at index: Int, _ value: ScalarValue) throws(PeatCRDTError) {
        _ = try listInsert(object, at: index, .set(value))
    }

    /// Inserts a new empty object at `index` of a list and returns its id.
    @discardableResult
    public func insertObject(_ object: ObjectID, at index: Int, _ type: ObjectType) throws(PeatCRDTError) -> ObjectID {
        objectID(try listInsert(object, at: index, .make(type)))
    }

    private func listElementOp(_ object: ObjectID, at index: Int, _ action: OpAction) throws(PeatCRDTError) -> OpID {
        let (obj, l) = try requireList(object)
        if case .make = action { try checkDepth(obj) }
        guard index >= 0, index < l.sequence.visibleCount else {
            throw invalidOperation("index \(index) out of range 0..<\(l.sequence.visibleCount)")
        }
        let p = l.sequence.positionOfVisible(index)
        let element = l.sequence.element(at: p)
        var pred = predOf(element.slots)
        if case .increment = action {
            guard case .scalar(.counter)? = element.slots?.winner.value else {
                throw invalidOperation("element \(index) does not hold a counter")
            }
            pred = .one(element.slots!.winner.id)
        }
        let id = try nextID()
        pending.append(Op(obj: obj, key: .seq(element.id), insert: false, action: action, pred: pred))
        updateListElement(l, at: p, obj: obj, id: id, action: action, pred: pred)
        bumpStateVersion()
        return id
    }

    /// Overwrites the element at `index` of a list with a scalar.
    public func set(_ object: ObjectID, at index: Int, _ value: ScalarValue) throws(PeatCRDTError) {
        _ = try listElementOp(object, at: index, .set(value))
    }

    /// Replaces the element at `index` of a list with a new empty object and returns its id.
    @discardableResult
    public func setObject(_ object: ObjectID, at index: Int, _ type: ObjectType) throws(PeatCRDTError) -> ObjectID {
        objectID(try listElementOp(object, at: index, .make(type)))
    }

    /// Removes the element at `index` of a list.
    public func remove(_ object: ObjectID, at index: Int) throws(PeatCRDTError) {
        _ = try listElementOp(object, at: index, .delete)
    }

    /// Adds `delta` to the counter at `index` of a list.
    public func increment(_ object: ObjectID, at index: Int, by delta: Int64) throws(PeatCRDTError) {
        _ = try listElementOp(object, at: index, .increment(delta))
    }

    // MARK: Text

    /// Deletes `deleteCount` characters (Unicode scalars) at `position` of a text, then inserts `insert` there.
    public func spliceText(_ object: ObjectID, at position: Int, deleting deleteCount: Int = 0, inserting insert: String = "") throws(PeatCRDTError) {
        let (obj, t) = try requireText(object)
        guard position >= 0, deleteCount >= 0, position + deleteCount <= t.sequence.visibleCount else {
            throw invalidOperation("splice \(position)+\(deleteCount) out of range 0...\(t.sequence.visibleCount)")
        }
        try checkCounterSpace(UInt64(deleteCount) + UInt64(insert.unicodeScalars.count))
        for _ in 0..<deleteCount {
            let p = t.sequence.positionOfVisible(position)
            let target = t.sequence.element(at: p).id
            let id = try nextID()
            pending.append(Op(obj: obj, key: .seq(target), insert: false, action: .delete, pred: .one(target)))
            t.sequence.update(at: p) { $0.isVisible = false }
            noteFieldWrite(obj: obj, key: nil, lastID: id)
        }
        let width = UInt64(insert.unicodeScalars.count)
        if width > 0 {
            let reference = position == 0 ? OpID.zero : t.sequence.element(at: t.sequence.positionOfVisible(position - 1)).id
            let id = try nextID(width: width)
            pending.append(Op(obj: obj, key: .seq(reference), insert: true, action: .text(insert, width: UInt32(width)), pred: .none))
            var counter = id.counter
            var index = position
            for scalar in insert.unicodeScalars {
                let p = t.sequence.positionAfterVisible(index - 1)
                t.sequence.insert(TextElement(id: OpID(counter: counter, actor: 0), scalar: scalar, isVisible: true), at: p)
                counter += 1
                index += 1
            }
            noteFieldWrite(obj: obj, key: nil, lastID: OpID(counter: counter - 1, actor: 0))
        }
        if deleteCount > 0 || width > 0 { bumpStateVersion() }
    }

    // MARK: Commit

    /// Whether local edits are waiting for `commit()`.
    public var hasPendingChanges: Bool { !pending.isEmpty }

    /// Seals the open local edits into one change.
    ///
    /// - Parameter time: the change's wall-clock time in milliseconds since the epoch (default: now).
    /// - Returns: `false` when there was nothing to commit.
    @discardableResult
    public func commit(time: Int64? = nil) -> Bool {
        guard !pending.isEmpty else { return false }
        var deps: [Int32] = []
        for h in headIndices where log[Int(h)].actor != 0 { deps.append(h) }
        var change = StoredChange(
            actor: 0, seq: seqs[0] + 1, startOp: pendingStart, time: time ?? Self.now(),
            deps: deps, ops: pending
        )
        for (hash, head) in externalHeads where head.actor != 0 { change.externalDeps.append(hash) }
        pending = []
        appendToLog(change)
        return true
    }

    static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// Records an applied change in the history: per-actor index, version vector and heads.
    func appendToLog(_ change: StoredChange) {
        let index = Int32(log.count)
        let a = Int(change.actor)
        let previous = actorLog[a].last
        if !headIndices.isEmpty {
            if change.deps.isEmpty, headIndices.count == 1 {
                if headIndices[0] == previous { headIndices.removeAll(keepingCapacity: true) }
            } else {
                headIndices.removeAll { h in h == previous || change.deps.contains(h) }
            }
        }
        if !externalHeads.isEmpty {
            externalHeads = externalHeads.filter { hash, head in
                !(head.actor == change.actor && head.seq + 1 == change.seq) && !change.externalDeps.contains(hash)
            }
        }
        headIndices.append(index)
        actorLog[a].append(index)
        seqs[a] = change.seq
        log.append(change)
    }
}
