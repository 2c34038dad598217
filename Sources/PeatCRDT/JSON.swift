/// A JSON value: what documents are read as and written from at the edges (broker, mesh).
public enum JSON: Hashable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    /// RFC 7396 merge patch: `patch` applied to `self`.
    public func mergePatched(with patch: JSON) -> JSON {
        guard case .object(let p) = patch else { return patch }
        var target: [String: JSON]
        if case .object(let t) = self { target = t } else { target = [:] }
        for (k, v) in p {
            if case .null = v {
                target[k] = nil
            } else {
                target[k] = (target[k] ?? .null).mergePatched(with: v)
            }
        }
        return .object(target)
    }

    /// The members of an object, or nil for any other value.
    public var object: [String: JSON]? {
        if case .object(let members) = self { return members }
        return nil
    }

    /// Compact JSON text with object keys sorted: equal values serialise to identical bytes.
    public var canonicalString: String {
        String(decoding: serialized(), as: UTF8.self)
    }

    /// `canonicalString` as UTF-8 bytes, written directly (several times faster than `JSONEncoder`;
    /// the broker answers every document request with it).
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(into: &out)
        return out
    }

    private func write(into out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let value): out.append(contentsOf: (value ? "true" : "false").utf8)
        case .int(let value): out.append(contentsOf: String(value).utf8)
        case .double(let value):
            // JSON has no NaN or infinity.
            out.append(contentsOf: (value.isFinite ? value.description : "null").utf8)
        case .string(let value): Self.writeString(value, into: &out)
        case .array(let values):
            out.append(UInt8(ascii: "["))
            for (index, value) in values.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                value.write(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (index, key) in members.keys.sorted().enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                Self.writeString(key, into: &out)
                out.append(UInt8(ascii: ":"))
                members[key]?.write(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static func writeString(_ string: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                let digits = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [
                    UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                    digits[Int(byte >> 4)], digits[Int(byte & 0xf)],
                ])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// JSON text through `Codable` (for example `JSONDecoder` on a request body): numbers without a
/// fraction or exponent that fit 64 bits decode as `.int`, others as `.double`.
extension JSON: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSON].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSON].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

/// The JSON bridge: reading a document as JSON, and writing JSON into it as minimal operations.
extension Document {
    /// The materialised document (or one object of it) as JSON.
    ///
    /// Counters and timestamps read as integers, bytes as an array of integers, text as a string.
    public func toJSON(_ object: ObjectID = .root) -> JSON {
        guard let id = opID(object) else { return .null }
        return json(of: id)
    }

    func json(of id: OpID) -> JSON {
        guard let state = objects[id] else { return .null }
        switch state {
        case .map(let m):
            var out: [String: JSON] = [:]
            out.reserveCapacity(m.entries.count)
            for (k, s) in m.entries { out[k] = json(of: s.winner) }
            return .object(out)
        case .list(let l):
            var out: [JSON] = []
            out.reserveCapacity(l.sequence.visibleCount)
            l.sequence.forEachVisible { e in out.append(json(of: e.slots!.winner)) }
            return .array(out)
        case .text(let t):
            return .string(t.string)
        }
    }

    func json(of slot: Slot) -> JSON {
        switch slot.value {
        case .object: json(of: slot.id)
        case .scalar(let s): Self.json(s)
        }
    }

    static func json(_ s: ScalarValue) -> JSON {
        switch s {
        case .null: .null
        case .bool(let b): .bool(b)
        case .int(let i), .timestamp(let i), .counter(let i): .int(i)
        case .double(let d): .double(d)
        case .string(let s): .string(s)
        case .bytes(let b): .array(b.map { .int(Int64($0)) })
        }
    }

    /// Makes the document equal to `json` with the fewest operations: unchanged values emit nothing,
    /// nested objects are updated in place, lists keep their common prefix and suffix.
    ///
    /// - Throws: `.invalidOperation` when `json` is not an object, or nests deeper than `maximumDepth`.
    public func replace(with json: JSON) throws(PeatCRDTError) {
        guard case .object(let members) = json else { throw invalidOperation("a document must be a JSON object") }
        try updateMap(.root, members, depth: 1)
    }

    /// Applies an RFC 7396 merge patch as minimal operations (keys the patch does not name are untouched).
    public func applyMergePatch(_ patch: JSON) throws(PeatCRDTError) {
        guard case .object(let members) = patch else { throw invalidOperation("a merge patch for a document must be a JSON object") }
        try mergePatch(.root, members, depth: 1)
    }

    private func mergePatch(_ object: ObjectID, _ patch: [String: JSON], depth: Int) throws(PeatCRDTError) {
        for (k, v) in patch.sorted(by: { $0.key < $1.key }) {
            if case .null = v {
                try delete(object, k)
            } else if case .object(let sub) = v, case .object(let child, .map)? = get(object, k) {
                try mergePatch(child, sub, depth: depth + 1)
            } else if case .object(let sub) = v {
                let child = try putObject(object, k, .map)
                try mergePatch(
                    child,
                    sub.filter {
                        if case .null = $0.value { return false }
                        return true
                    }, depth: depth + 1)
            } else {
                try update(object, k, v, depth: depth)
            }
        }
    }

    private func updateMap(_ object: ObjectID, _ members: [String: JSON], depth: Int) throws(PeatCRDTError) {
        guard depth <= Self.maximumDepth else { throw invalidOperation("JSON nested deeper than \(Self.maximumDepth)") }
        for k in keys(object) where members[k] == nil { try delete(object, k) }
        for (k, v) in members.sorted(by: { $0.key < $1.key }) { try update(object, k, v, depth: depth) }
    }

    /// Writes `value` under `key`, reusing the existing object when the shapes match.
    private func update(_ object: ObjectID, _ key: String, _ value: JSON, depth: Int) throws(PeatCRDTError) {
        let current = get(object, key)
        let conflicted = conflicts(object, key).count > 1
        switch (value, current) {
        case (.object(let members), .object(let child, .map)?):
            try updateMap(child, members, depth: depth + 1)
        case (.array(let items), .object(let child, .list)?):
            try updateList(child, items, depth: depth + 1)
        case (.object(let members), _):
            let child = try putObject(object, key, .map)
            try updateMap(child, members, depth: depth + 1)
        case (.array(let items), _):
            let child = try putObject(object, key, .list)
            try updateList(child, items, depth: depth + 1)
        default:
            let scalar = Self.scalar(value)
            if !conflicted, case .scalar(let existing)? = current, Self.json(existing) == value { return }
            try put(object, key, scalar)
        }
    }

    private func updateList(_ list: ObjectID, _ items: [JSON], depth: Int) throws(PeatCRDTError) {
        guard depth <= Self.maximumDepth else { throw invalidOperation("JSON nested deeper than \(Self.maximumDepth)") }
        let existing = elements(list).map { v -> JSON in
            switch v {
            case .scalar(let s): Self.json(s)
            case .object(let o, _): toJSON(o)
            }
        }
        var prefix = 0
        while prefix < existing.count, prefix < items.count, existing[prefix] == items[prefix] { prefix += 1 }
        var suffix = 0
        while suffix < existing.count - prefix, suffix < items.count - prefix,
            existing[existing.count - 1 - suffix] == items[items.count - 1 - suffix]
        { suffix += 1 }
        let oldMiddle = existing.count - prefix - suffix
        let newMiddle = items.count - prefix - suffix
        let common = min(oldMiddle, newMiddle)
        for i in 0..<common {
            let index = prefix + i
            let item = items[index]
            switch (item, get(list, index)) {
            case (.object(let members), .object(let child, .map)?): try updateMap(child, members, depth: depth + 1)
            case (.array(let sub), .object(let child, .list)?): try updateList(child, sub, depth: depth + 1)
            case (.object(let members), _):
                let child = try setObject(list, at: index, .map)
                try updateMap(child, members, depth: depth + 1)
            case (.array(let sub), _):
                let child = try setObject(list, at: index, .list)
                try updateList(child, sub, depth: depth + 1)
            default: try set(list, at: index, Self.scalar(item))
            }
        }
        if oldMiddle > newMiddle {
            for _ in 0..<(oldMiddle - newMiddle) { try remove(list, at: prefix + common) }
        } else {
            for i in common..<newMiddle { try insertJSON(list, at: prefix + i, items[prefix + i], depth: depth) }
        }
    }

    private func insertJSON(_ list: ObjectID, at index: Int, _ item: JSON, depth: Int) throws(PeatCRDTError) {
        switch item {
        case .object(let members):
            let child = try insertObject(list, at: index, .map)
            try updateMap(child, members, depth: depth + 1)
        case .array(let sub):
            let child = try insertObject(list, at: index, .list)
            try updateList(child, sub, depth: depth + 1)
        default:
            try insert(list, at: index, Self.scalar(item))
        }
    }

    static func scalar(_ json: JSON) -> ScalarValue {
        switch json {
        case .null: .null
        case .bool(let b): .bool(b)
        case .int(let i): .int(i)
        case .double(let d): .double(d)
        case .string(let s): .string(s)
        case .array, .object: .null
        }
    }
}
