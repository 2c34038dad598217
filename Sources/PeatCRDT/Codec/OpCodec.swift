/// The binary form of one operation, shared by the canonical change encoding and change batches.
///
/// One header byte: bits 0-3 the action (scalar type folded in), bit 4 insert, bit 5 sequence key,
/// bit 6 root object, bit 7 has predecessors. Op ids are written relative to the operation's own
/// counter (a referenced op is always older), so nearby references take one or two bytes.
enum OpCodec {
    enum Action: UInt8 {
        case makeMap = 0, makeList, makeText, delete, increment, text
        case null, `false`, `true`, int, double, string, bytes, timestamp, counter
    }

    static func code(_ action: OpAction) -> Action {
        switch action {
        case .make(.map): .makeMap
        case .make(.list): .makeList
        case .make(.text): .makeText
        case .delete: .delete
        case .increment: .increment
        case .text: .text
        case .set(let v):
            switch v {
            case .null: .null
            case .bool(false): .false
            case .bool(true): .true
            case .int: .int
            case .double: .double
            case .string: .string
            case .bytes: .bytes
            case .timestamp: .timestamp
            case .counter: .counter
            }
        }
    }

    @inline(__always)
    static func writeID(_ id: OpID, own: UInt64, actor: (UInt32) -> UInt32, into w: inout ByteWriter) {
        if id.isZero {
            w.byte(0)
            return
        }
        w.uleb(own &- id.counter)
        w.uleb(UInt64(actor(id.actor)))
    }

    @inline(__always)
    static func readID(own: UInt64, actorCount: Int, from r: inout ByteReader) throws(PeatCRDTError) -> OpID {
        let delta = try r.uleb()
        if delta == 0 { return .zero }
        guard delta < own else { throw ByteReader.malformed("op id reference out of range") }
        let actor = try r.uleb()
        guard actor < UInt64(actorCount) else { throw ByteReader.malformed("actor index out of range") }
        return OpID(counter: own - delta, actor: UInt32(actor))
    }

    static func encode(_ op: Op, own: UInt64, actor: (UInt32) -> UInt32, into w: inout ByteWriter) {
        var header = code(op.action).rawValue
        if op.insert { header |= 0x10 }
        if case .seq = op.key { header |= 0x20 }
        if op.obj.isZero { header |= 0x40 }
        if !op.pred.isEmpty { header |= 0x80 }
        w.byte(header)
        if !op.obj.isZero { writeID(op.obj, own: own, actor: actor, into: &w) }
        switch op.key {
        case .map(let k): w.string(k)
        case .seq(let e): writeID(e, own: own, actor: actor, into: &w)
        }
        switch op.pred {
        case .none: break
        case .one(let p):
            w.byte(1)
            writeID(p, own: own, actor: actor, into: &w)
        case .many(let ps):
            w.uleb(ps.count)
            for p in ps { writeID(p, own: own, actor: actor, into: &w) }
        }
        switch op.action {
        case .make, .delete: break
        case .increment(let n): w.sleb(n)
        case .text(let s, _): w.string(s)
        case .set(let v): writePayload(v, into: &w)
        }
    }

    /// A scalar on its own (saved state, snapshots): its code byte, then its payload.
    static func writeScalar(_ v: ScalarValue, into w: inout ByteWriter) {
        w.byte(code(.set(v)).rawValue)
        writePayload(v, into: &w)
    }

    private static func writePayload(_ v: ScalarValue, into w: inout ByteWriter) {
        switch v {
        case .null, .bool: break
        case .int(let n), .timestamp(let n), .counter(let n): w.sleb(n)
        case .double(let d): w.double(d)
        case .string(let s): w.string(s)
        case .bytes(let b): w.data(b)
        }
    }

    /// Reads the payload of the scalar with code byte `code`; `nil` when `code` is not a scalar code.
    static func readScalar(code: UInt8, from r: inout ByteReader) throws(PeatCRDTError) -> ScalarValue? {
        switch Action(rawValue: code) {
        case .null?: return .null
        case .false?: return .bool(false)
        case .true?: return .bool(true)
        case .int?: return .int(try r.sleb())
        case .double?: return .double(try r.double())
        case .string?: return .string(try r.string())
        case .bytes?: return .bytes(try r.data())
        case .timestamp?: return .timestamp(try r.sleb())
        case .counter?: return .counter(try r.sleb())
        default: return nil
        }
    }

    static func decode(own: UInt64, actorCount: Int, from r: inout ByteReader) throws(PeatCRDTError) -> Op {
        let header = try r.byte()
        guard let action = Action(rawValue: header & 0x0F) else { throw ByteReader.malformed("unknown operation code") }
        let insert = header & 0x10 != 0
        let obj: OpID = header & 0x40 != 0 ? .zero : try readID(own: own, actorCount: actorCount, from: &r)
        if header & 0x40 == 0, obj.isZero { throw ByteReader.malformed("non-root object with a zero id") }
        let key: OpKey =
            header & 0x20 != 0
            ? .seq(try readID(own: own, actorCount: actorCount, from: &r))
            : .map(try r.string())
        var pred = Pred.none
        if header & 0x80 != 0 {
            let n = try r.count()
            guard n > 0 else { throw ByteReader.malformed("empty predecessor list") }
            if n == 1 {
                pred = .one(try readID(own: own, actorCount: actorCount, from: &r))
            } else {
                var ps: [OpID] = []
                ps.reserveCapacity(n)
                for _ in 0..<n { ps.append(try readID(own: own, actorCount: actorCount, from: &r)) }
                pred = .many(ps)
            }
        }
        let decoded: OpAction
        switch action {
        case .makeMap: decoded = .make(.map)
        case .makeList: decoded = .make(.list)
        case .makeText: decoded = .make(.text)
        case .delete: decoded = .delete
        case .increment: decoded = .increment(try r.sleb())
        case .text:
            let s = try r.string()
            let width = s.unicodeScalars.count
            guard width > 0, width <= Int(UInt32.max) else { throw ByteReader.malformed("empty text insert") }
            decoded = .text(s, width: UInt32(width))
        case .null, .false, .true, .int, .double, .string, .bytes, .timestamp, .counter:
            decoded = .set(try readScalar(code: action.rawValue, from: &r)!)
        }
        if insert, case .map = key { throw ByteReader.malformed("insert with a map key") }
        return Op(obj: obj, key: key, insert: insert, action: decoded, pred: pred)
    }
}
