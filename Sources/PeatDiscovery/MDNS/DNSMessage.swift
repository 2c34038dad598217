/// A DNS message as mDNS / DNS-SD uses it (RFC 1035, 6762, 6763): questions and resource records of
/// the types DNS-SD needs. Decoding is safe on hostile input: every length and pointer is checked,
/// compression pointers must point backwards, and counts are bounded by the bytes present.
public struct DNSMessage: Sendable, Equatable {
    public struct Question: Sendable, Equatable {
        public var name: String
        public var type: UInt16
        /// mDNS: ask for a unicast response (the class's top bit).
        public var unicastResponse: Bool

        public init(name: String, type: UInt16, unicastResponse: Bool = false) {
            self.name = name
            self.type = type
            self.unicastResponse = unicastResponse
        }
    }

    public enum RecordData: Sendable, Equatable {
        case a([UInt8])
        case aaaa([UInt8])
        case ptr(String)
        case srv(priority: UInt16, weight: UInt16, port: UInt16, target: String)
        /// TXT strings as raw bytes (DNS-SD `key=value`).
        case txt([[UInt8]])
        case other(type: UInt16, bytes: [UInt8])

        var type: UInt16 {
            switch self {
            case .a: DNSMessage.typeA
            case .aaaa: DNSMessage.typeAAAA
            case .ptr: DNSMessage.typePTR
            case .srv: DNSMessage.typeSRV
            case .txt: DNSMessage.typeTXT
            case .other(let type, _): type
            }
        }
    }

    public struct Record: Sendable, Equatable {
        public var name: String
        public var data: RecordData
        /// Seconds; 0 announces the record's removal (a goodbye).
        public var ttl: UInt32
        /// mDNS: the record replaces cached ones of the same name and type (the class's top bit).
        public var cacheFlush: Bool

        public init(name: String, data: RecordData, ttl: UInt32, cacheFlush: Bool = false) {
            self.name = name
            self.data = data
            self.ttl = ttl
            self.cacheFlush = cacheFlush
        }
    }

    public static let typeA: UInt16 = 1
    public static let typePTR: UInt16 = 12
    public static let typeTXT: UInt16 = 16
    public static let typeAAAA: UInt16 = 28
    public static let typeSRV: UInt16 = 33
    public static let typeANY: UInt16 = 255

    public var id: UInt16 = 0
    public var isResponse: Bool
    public var questions: [Question]
    /// Answer, authority and additional records together.
    public var records: [Record]

    public init(id: UInt16 = 0, isResponse: Bool, questions: [Question] = [], records: [Record] = []) {
        self.id = id
        self.isResponse = isResponse
        self.questions = questions
        self.records = records
    }

    // MARK: Encoding (uncompressed, which every resolver accepts)

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        Self.put16(id, &out)
        Self.put16(isResponse ? 0x8400 : 0, &out)  // QR + AA for responses
        Self.put16(UInt16(questions.count), &out)
        Self.put16(UInt16(records.count), &out)
        Self.put16(0, &out)
        Self.put16(0, &out)
        for question in questions {
            Self.putName(question.name, &out)
            Self.put16(question.type, &out)
            Self.put16(1 | (question.unicastResponse ? 0x8000 : 0), &out)
        }
        for record in records {
            Self.putName(record.name, &out)
            Self.put16(record.data.type, &out)
            Self.put16(1 | (record.cacheFlush ? 0x8000 : 0), &out)
            Self.put32(record.ttl, &out)
            var rdata: [UInt8] = []
            switch record.data {
            case .a(let bytes), .aaaa(let bytes), .other(_, let bytes): rdata = bytes
            case .ptr(let target): Self.putName(target, &rdata)
            case .srv(let priority, let weight, let port, let target):
                Self.put16(priority, &rdata)
                Self.put16(weight, &rdata)
                Self.put16(port, &rdata)
                Self.putName(target, &rdata)
            case .txt(let strings):
                for string in strings.isEmpty ? [[]] : strings {
                    rdata.append(UInt8(min(string.count, 255)))
                    rdata.append(contentsOf: string.prefix(255))
                }
            }
            Self.put16(UInt16(rdata.count), &out)
            out.append(contentsOf: rdata)
        }
        return out
    }

    private static func put16(_ value: UInt16, _ out: inout [UInt8]) {
        out.append(UInt8(value >> 8))
        out.append(UInt8(value & 0xff))
    }

    private static func put32(_ value: UInt32, _ out: inout [UInt8]) {
        put16(UInt16(value >> 16), &out)
        put16(UInt16(value & 0xffff), &out)
    }

    private static func putName(_ name: String, _ out: inout [UInt8]) {
        for label in name.split(separator: ".", omittingEmptySubsequences: true) {
            let bytes = Array(label.utf8.prefix(63))
            out.append(UInt8(bytes.count))
            out.append(contentsOf: bytes)
        }
        out.append(0)
    }

    // MARK: Decoding

    /// Decodes a packet.
    /// - Throws: `DiscoveryError(.malformedResponse)` for anything that is not a well-formed message.
    public static func decode(_ bytes: [UInt8]) throws(DiscoveryError) -> DNSMessage {
        var reader = Reader(bytes: bytes)
        let id = try reader.u16()
        let flags = try reader.u16()
        let questionCount = Int(try reader.u16())
        let recordCount = Int(try reader.u16()) + Int(try reader.u16()) + Int(try reader.u16())
        // Each question takes at least 5 bytes and each record at least 11: bound the counts.
        guard questionCount * 5 + recordCount * 11 <= bytes.count - 12 else {
            throw malformed("counts exceed the packet")
        }
        var questions: [Question] = []
        for _ in 0..<questionCount {
            let name = try reader.name()
            let type = try reader.u16()
            let klass = try reader.u16()
            questions.append(Question(name: name, type: type, unicastResponse: klass & 0x8000 != 0))
        }
        var records: [Record] = []
        for _ in 0..<recordCount {
            let name = try reader.name()
            let type = try reader.u16()
            let klass = try reader.u16()
            let ttl = try reader.u32()
            let length = Int(try reader.u16())
            let end = reader.offset + length
            guard end <= bytes.count else { throw malformed("record data runs past the packet") }
            let data: RecordData
            switch type {
            case typeA:
                guard length == 4 else { throw malformed("A record of \(length) bytes") }
                data = .a(Array(bytes[reader.offset..<end]))
            case typeAAAA:
                guard length == 16 else { throw malformed("AAAA record of \(length) bytes") }
                data = .aaaa(Array(bytes[reader.offset..<end]))
            case typePTR:
                data = .ptr(try reader.name())
            case typeSRV:
                let priority = try reader.u16()
                let weight = try reader.u16()
                let port = try reader.u16()
                data = .srv(priority: priority, weight: weight, port: port, target: try reader.name())
            case typeTXT:
                var strings: [[UInt8]] = []
                var position = reader.offset
                while position < end {
                    let count = Int(bytes[position])
                    guard position + 1 + count <= end else { throw malformed("TXT string runs past its record") }
                    if count > 0 { strings.append(Array(bytes[(position + 1)..<(position + 1 + count)])) }
                    position += 1 + count
                }
                data = .txt(strings)
            default:
                data = .other(type: type, bytes: Array(bytes[reader.offset..<end]))
            }
            guard reader.offset <= end else { throw malformed("record data longer than declared") }
            reader.offset = end
            records.append(Record(name: name, data: data, ttl: ttl, cacheFlush: klass & 0x8000 != 0))
        }
        return DNSMessage(id: id, isResponse: flags & 0x8000 != 0, questions: questions, records: records)
    }

    static func malformed(_ why: String) -> DiscoveryError {
        DiscoveryError(code: .malformedResponse, message: "malformed DNS message: \(why)")
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func u16() throws(DiscoveryError) -> UInt16 {
            guard offset + 2 <= bytes.count else { throw DNSMessage.malformed("truncated") }
            defer { offset += 2 }
            return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
        }

        mutating func u32() throws(DiscoveryError) -> UInt32 {
            UInt32(try u16()) << 16 | UInt32(try u16())
        }

        /// A possibly compressed name; pointers must point backwards, at most 128 of them.
        mutating func name() throws(DiscoveryError) -> String {
            var labels: [String] = []
            var position = offset
            var jumped = false
            var jumps = 0
            var length = 0
            while true {
                guard position < bytes.count else { throw DNSMessage.malformed("name runs past the packet") }
                let count = Int(bytes[position])
                if count == 0 {
                    if !jumped { offset = position + 1 }
                    break
                }
                if count & 0xC0 == 0xC0 {
                    guard position + 1 < bytes.count else { throw DNSMessage.malformed("truncated pointer") }
                    let target = (count & 0x3F) << 8 | Int(bytes[position + 1])
                    guard target < position, jumps < 128 else { throw DNSMessage.malformed("compression pointer loop") }
                    if !jumped { offset = position + 2 }
                    jumped = true
                    jumps += 1
                    position = target
                    continue
                }
                guard count <= 63, position + 1 + count <= bytes.count else { throw DNSMessage.malformed("bad label") }
                length += count + 1
                guard length <= 255 else { throw DNSMessage.malformed("name longer than 255 bytes") }
                labels.append(String(decoding: bytes[(position + 1)..<(position + 1 + count)], as: UTF8.self))
                position += 1 + count
            }
            return labels.joined(separator: ".") + "."
        }
    }
}
