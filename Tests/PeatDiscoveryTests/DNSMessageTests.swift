import PeatDiscovery
import Testing

struct DNSMessageTests {
    /// A DNS-SD announcement built by python-zeroconf 0.x (with name compression).
    static let zeroconfAnnouncement = bytes(
        hex:
            "000084000000000400000000055f70656174045f746370056c6f63616c00000c000100001194000e0b706561742d6d6573682d31c00cc02800218001000000780014000000002bc40b706561742d6d6573682d31c017c0280010800100001194003f136e6f64655f69643d706561742d6d6573682d312a6465766963655f69643d3632343966636538626564643031343562646531366633396433323661353763c048000180010000007800040a000007"
    )

    static func bytes(hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            out.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return out
    }

    @Test func decodesAPythonZeroconfAnnouncement() throws {
        let message = try DNSMessage.decode(Self.zeroconfAnnouncement)
        #expect(message.isResponse)
        #expect(message.records.count == 4)
        #expect(message.records[0] == .init(name: "_peat._tcp.local.", data: .ptr("peat-mesh-1._peat._tcp.local."), ttl: 4500))
        #expect(
            message.records[1]
                == .init(
                    name: "peat-mesh-1._peat._tcp.local.", data: .srv(priority: 0, weight: 0, port: 11204, target: "peat-mesh-1.local."), ttl: 120,
                    cacheFlush: true))
        #expect(message.records[2].data == .txt([Array("node_id=peat-mesh-1".utf8), Array("device_id=6249fce8bedd0145bde16f39d326a57c".utf8)]))
        #expect(message.records[3] == .init(name: "peat-mesh-1.local.", data: .a([10, 0, 0, 7]), ttl: 120, cacheFlush: true))
    }

    @Test func encodedMessagesDecodeToThemselves() throws {
        let message = DNSMessage(
            id: 0, isResponse: true,
            questions: [.init(name: "_peat._tcp.local.", type: DNSMessage.typePTR, unicastResponse: true)],
            records: [
                .init(name: "_peat._tcp.local.", data: .ptr("n1._peat._tcp.local."), ttl: 4500),
                .init(name: "n1._peat._tcp.local.", data: .srv(priority: 0, weight: 0, port: 11204, target: "n1.local."), ttl: 120, cacheFlush: true),
                .init(name: "n1._peat._tcp.local.", data: .txt([Array("node_id=n1".utf8)]), ttl: 0),
                .init(name: "n1.local.", data: .aaaa([UInt8](repeating: 1, count: 16)), ttl: 120),
                .init(name: "n1.local.", data: .other(type: 47, bytes: [1, 2, 3]), ttl: 120),
            ])
        #expect(try DNSMessage.decode(message.encoded()) == message)
    }

    @Test func txtStringLongerThanItsRecordIsRefused() {
        // The first version of the reference packet above had a TXT length byte one short (0x29
        // for 42 bytes); decoding must refuse such a packet rather than misread it.
        var packet = Self.zeroconfAnnouncement
        let index = packet.firstIndex(of: 0x2a)!
        packet[index] = 0x29
        #expect(throws: DiscoveryError.self) { try DNSMessage.decode(packet) }
    }

    @Test func hostileInputIsAnErrorNeverACrash() {
        var generator = SystemRandomNumberGenerator()
        // A pointer to itself, a forward pointer, absurd counts, truncations of a good packet.
        let loops: [[UInt8]] = [
            [0, 0, 0x84, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1],
            [0, 0, 0x84, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 14, 0, 1, 0, 1],
            [0, 0, 0x84, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0],
        ]
        for packet in loops {
            #expect(throws: DiscoveryError.self) { try DNSMessage.decode(packet) }
        }
        for length in 0..<Self.zeroconfAnnouncement.count {
            _ = try? DNSMessage.decode(Array(Self.zeroconfAnnouncement.prefix(length)))
        }
        for _ in 0..<5_000 {
            var packet = Self.zeroconfAnnouncement
            for _ in 0..<3 { packet[Int.random(in: 0..<packet.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator) }
            _ = try? DNSMessage.decode(packet)
            let noise = (0..<Int.random(in: 0...64, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = try? DNSMessage.decode(noise)
        }
    }
}
