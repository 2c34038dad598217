import Foundation
import PeatIdentity
import Testing

struct DeviceIDTests {
    @Test func isFirstSixteenBytesOfPublicKeyHash() throws {
        // Vector: public key and device ID from shared/vectors/identity.json.
        let vector = IdentityVectors.shared.device_keys[0]
        let key = try DevicePublicKey(rawRepresentation: bytes(hex: vector.public_key_hex))
        #expect(key.deviceID.hex == vector.device_id)
        #expect(key.deviceID.rawRepresentation.count == 16)
        #expect(key.deviceID.description == vector.device_id)
    }

    @Test func parsesLowercaseAndUppercaseHexAndPrintsLowercase() throws {
        let lower = try DeviceID(hex: "f32c9134aa76cd5407e64539cafd5c61")
        let upper = try DeviceID(hex: "F32C9134AA76CD5407E64539CAFD5C61")
        #expect(lower == upper)
        #expect(upper.hex == "f32c9134aa76cd5407e64539cafd5c61")
    }

    @Test(arguments: [
        "",
        "f32c9134aa76cd5407e64539cafd5c6",  // 31 characters
        "f32c9134aa76cd5407e64539cafd5c611",  // 33 characters
        "f32c9134aa76cd5407e64539cafd5c6g",  // not hex
        "f32c9134aa76cd5407e64539cafd5c61f32c9134aa76cd5407e64539cafd5c61",
        " f32c9134aa76cd5407e64539cafd5c6",
        "0xf32c9134aa76cd5407e64539cafd5c6",
        "é32c9134aa76cd5407e64539cafd5c6",  // 32 characters, 33 bytes
        "f32c9134aa76cd5407e64539cafd5c6\n",
    ])
    func rejectsMalformedHex(_ text: String) {
        #expect {
            try DeviceID(hex: text)
        } throws: { error in
            let error = error as? IdentityError
            return error?.code == .invalidHex && !(error?.message.contains("\n") ?? true)
        }
    }

    @Test(arguments: [0, 15, 17, 32])
    func rejectsRawBytesOfWrongLength(_ length: Int) {
        #expect {
            try DeviceID(rawRepresentation: [UInt8](repeating: 1, count: length))
        } throws: { error in
            (error as? IdentityError)?.code == .invalidLength
        }
    }

    @Test func ordersBytewise() throws {
        let low = try DeviceID(hex: "00ffffffffffffffffffffffffffffff")
        let high = try DeviceID(hex: "0100000000000000000000000000000f")
        #expect(low < high)
        #expect(!(high < low))
        #expect([high, low].sorted() == [low, high])
    }

    @Test func codesAsHexString() throws {
        let id = try DeviceID(hex: "17e5c521eeb6fd60065f60d0174c074b")
        let json = try JSONEncoder().encode([id])
        #expect(String(decoding: json, as: UTF8.self) == #"["17e5c521eeb6fd60065f60d0174c074b"]"#)
        #expect(try JSONDecoder().decode([DeviceID].self, from: json) == [id])
        #expect(throws: (any Error).self) {
            try JSONDecoder().decode([DeviceID].self, from: Data(#"["not-a-device-id"]"#.utf8))
        }
    }
}
