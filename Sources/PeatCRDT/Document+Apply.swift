/// Applying operations to the materialised state: the one place state changes, for local edits,
/// remote changes and loading alike.
extension Document {
    /// New slots for a map key or list element after an operation that supersedes `pred` and
    /// (unless `newValue` is nil, a delete) adds a value.
    @inline(__always)
    func superseding(_ existing: Slots?, pred: Pred, with newSlot: Slot?) -> Slots? {
        guard let existing else { return newSlot.map { Slots(winner: $0) } }
        // Fast path: one value, overwritten by one op that saw it.
        if existing.others.isEmpty, case .one(let p) = pred, p == existing.winner.id {
            return newSlot.map { Slots(winner: $0) }
        }
        var kept: [Slot] = []
        if !pred.contains(existing.winner.id) { kept.append(existing.winner) }
        for s in existing.others where !pred.contains(s.id) { kept.append(s) }
        if let newSlot { kept.append(newSlot) }
        return slots(from: kept)
    }

    /// Orders concurrent values: the highest op id wins, the others follow in descending order.
    func slots(from values: [Slot]) -> Slots? {
        guard !values.isEmpty else { return nil }
        var others = values
        var best = 0
        for i in 1..<others.count where precedes(others[best].id, others[i].id) { best = i }
        let winner = others.remove(at: best)
        others.sort { precedes($1.id, $0.id) }
        return Slots(winner: winner, others: others)
    }

    @inline(__always)
    func incremented(_ slots: Slots, pred: Pred, by n: Int64) -> Slots {
        var s = slots
        if pred.contains(s.winner.id), case .scalar(.counter(let v)) = s.winner.value {
            s.winner.value = .scalar(.counter(v &+ n))
        }
        for i in s.others.indices where pred.contains(s.others[i].id) {
            if case .scalar(.counter(let v)) = s.others[i].value { s.others[i].value = .scalar(.counter(v &+ n)) }
        }
        return s
    }

    func slotValue(_ action: OpAction) -> SlotValue? {
        switch action {
        case .make(let t): .object(t)
        case .set(let v): .scalar(v)
        default: nil
        }
    }

    /// Registers an object created by op `id` under `parent` (`key` when the parent is the root).
    @inline(__always)
    func createObject(_ type: ObjectType, id: OpID, parent: OpID, key: String?) {
        objectDepth[id] = (objectDepth[parent] ?? 0) &+ 1
        switch type {
        case .map: objects[id] = .map(MapObject())
        case .list: objects[id] = .list(ListObject())
        case .text: objects[id] = .text(TextObject())
        }
        if parent.isZero {
            if let key { rootFieldOf[id] = key }
        } else if let field = rootFieldOf[parent] {
            rootFieldOf[id] = field
        }
    }

    @inline(__always)
    func noteFieldWrite(obj: OpID, key: String?, lastID: OpID) {
        let field: String
        if obj.isZero {
            guard let key else { return }
            field = key
        } else if obj == lastFieldLookup.obj {
            field = lastFieldLookup.field
        } else {
            guard let f = rootFieldOf[obj] else { return }
            field = f
            lastFieldLookup = (obj, f)
        }
        if let current = fieldVersion[field], !precedes(current, lastID) { return }
        fieldVersion[field] = lastID
    }

    func applyMapOp(_ m: MapObject, obj: OpID, key: String, id: OpID, action: OpAction, pred: Pred) {
        if case .increment(let n) = action {
            if let slots = m.entries[key] { m.entries[key] = incremented(slots, pred: pred, by: n) }
            noteFieldWrite(obj: obj, key: key, lastID: id)
            return
        }
        let newSlot = slotValue(action).map { Slot(id: id, value: $0) }
        let result = superseding(m.entries[key], pred: pred, with: newSlot)
        if let result {
            m.entries[key] = result
            if !m.tombstones.isEmpty, let t = m.tombstones[key], precedes(t, id) { m.tombstones[key] = nil }
        } else {
            m.entries[key] = nil
            if let t = m.tombstones[key], precedes(id, t) {} else { m.tombstones[key] = id }
        }
        if case .make(let t) = action { createObject(t, id: id, parent: obj, key: key) }
        noteFieldWrite(obj: obj, key: key, lastID: id)
    }

    /// Inserts the element op `id` creates (a scalar or a new object; `action` is `.set` or `.make`).
    func insertListElement(_ l: ListObject, at p: RGASequence<ListElement>.Position, obj: OpID, id: OpID, action: OpAction) {
        l.sequence.insert(ListElement(id: id, slots: Slots(winner: Slot(id: id, value: slotValue(action)!))), at: p)
        if case .make(let t) = action { createObject(t, id: id, parent: obj, key: nil) }
        noteFieldWrite(obj: obj, key: nil, lastID: id)
    }

    /// Overwrites, deletes or increments the list element at `p` with op `id`.
    func updateListElement(
        _ l: ListObject, at p: RGASequence<ListElement>.Position, obj: OpID, id: OpID, action: OpAction, pred: Pred
    ) {
        if case .increment(let n) = action {
            l.sequence.update(at: p) { el in
                if let s = el.slots { el.slots = incremented(s, pred: pred, by: n) }
            }
        } else {
            let newSlot = slotValue(action).map { Slot(id: id, value: $0) }
            l.sequence.update(at: p) { el in el.slots = superseding(el.slots, pred: pred, with: newSlot) }
            if case .make(let t) = action { createObject(t, id: id, parent: obj, key: nil) }
        }
        noteFieldWrite(obj: obj, key: nil, lastID: id)
    }

    /// Checks that a remote operation fits the document before anything is changed.
    ///
    /// `created` holds objects made by earlier operations of the same change; `inserted` the sequence
    /// elements inserted by them.
    func validate(
        _ op: Op, id: OpID, created: inout [OpID: ObjectType], createdDepth: inout [OpID: UInt8], inserted: inout Set<OpID>,
        track: Bool = true
    ) throws(PeatCRDTError) {
        func invalid(_ why: String) -> PeatCRDTError { PeatCRDTError(.invalidChange, why) }
        let type: ObjectType
        if let state = objects[op.obj] {
            type = state.type
        } else if let t = created[op.obj] {
            type = t
        } else {
            throw invalid("operation on an unknown object")
        }
        func elementExists(_ e: OpID) -> Bool {
            if inserted.contains(e) { return true }
            switch objects[op.obj] {
            case .list(let l)?: return l.sequence.contains(e)
            case .text(let t)?: return t.sequence.contains(e)
            default: return false
            }
        }
        switch (type, op.key) {
        case (.map, .map):
            guard !op.insert else { throw invalid("insert into a map") }
            if case .text = op.action { throw invalid("text operation on a map") }
        case (.list, .seq(let e)):
            if op.insert {
                switch op.action {
                case .set, .make: break
                default: throw invalid("list insert without a value")
                }
                guard e.isZero || elementExists(e) else { throw invalid("insert after an unknown element") }
                guard !elementExists(id) else { throw invalid("duplicate element id") }
                if track { inserted.insert(id) }
            } else {
                if case .text = op.action { throw invalid("text operation on a list") }
                guard !e.isZero, elementExists(e) else { throw invalid("operation on an unknown element") }
            }
        case (.text, .seq(let e)):
            if op.insert {
                guard case .text(_, let width) = op.action, width > 0 else { throw invalid("text insert without characters") }
                guard e.isZero || elementExists(e) else { throw invalid("insert after an unknown character") }
                for i in 0..<UInt64(width) {
                    let cid = OpID(counter: id.counter + i, actor: id.actor)
                    guard !elementExists(cid) else { throw invalid("duplicate character id") }
                    if track { inserted.insert(cid) }
                }
            } else {
                guard case .delete = op.action else { throw invalid("only inserts and deletes apply to text") }
                guard !e.isZero, elementExists(e) else { throw invalid("delete of an unknown character") }
            }
        default:
            throw invalid("key kind does not match the object type")
        }
        if case .make(let t) = op.action {
            guard objects[id] == nil, created[id] == nil else { throw invalid("duplicate object id") }
            let depth = Int(objectDepth[op.obj] ?? createdDepth[op.obj] ?? 0) + 1
            guard depth <= Self.maximumDepth else { throw invalid("objects nested deeper than \(Self.maximumDepth)") }
            created[id] = t
            createdDepth[id] = UInt8(depth)
        }
    }

    /// Applies one validated operation with id `id` (remote changes and loading).
    func apply(_ op: Op, id: OpID) {
        guard let state = objects[op.obj] else { return }
        switch state {
        case .map(let m):
            guard case .map(let key) = op.key else { return }
            applyMapOp(m, obj: op.obj, key: key, id: id, action: op.action, pred: op.pred)
        case .list(let l):
            guard case .seq(let e) = op.key else { return }
            if op.insert {
                guard slotValue(op.action) != nil,
                    let p = l.sequence.insertionPosition(after: e, id: id, precedes: precedes)
                else { return }
                insertListElement(l, at: p, obj: op.obj, id: id, action: op.action)
            } else {
                guard let p = l.sequence.position(of: e) else { return }
                updateListElement(l, at: p, obj: op.obj, id: id, action: op.action, pred: op.pred)
            }
        case .text(let t):
            guard case .seq(let e) = op.key else { return }
            if op.insert {
                guard case .text(let s, let width) = op.action else { return }
                var reference = e
                var counter = id.counter
                for scalar in s.unicodeScalars {
                    let cid = OpID(counter: counter, actor: id.actor)
                    guard let p = t.sequence.insertionPosition(after: reference, id: cid, precedes: precedes) else { return }
                    t.sequence.insert(TextElement(id: cid, scalar: scalar, isVisible: true), at: p)
                    reference = cid
                    counter += 1
                }
                noteFieldWrite(obj: op.obj, key: nil, lastID: OpID(counter: id.counter + UInt64(width) - 1, actor: id.actor))
            } else {
                guard let p = t.sequence.position(of: e) else { return }
                t.sequence.update(at: p) { $0.isVisible = false }
                noteFieldWrite(obj: op.obj, key: nil, lastID: id)
            }
        }
    }
}
