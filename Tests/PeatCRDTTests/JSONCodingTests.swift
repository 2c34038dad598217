import Foundation
import PeatCRDT
import Testing

struct JSONCodingTests {
    @Test(arguments: [
        #"{"b":[1,2.5,"x\n\"y\"",true,null],"a":{"z":-7,"e":1e-05},"u":"é😀\u0001"}"#,
        #"[]"#, #"{}"#, #""plain""#, #"0"#, #"-9223372036854775808"#, #"1.7976931348623157e+308"#,
    ])
    func serializationRoundTripsThroughAStandardParser(_ text: String) throws {
        let value = try JSONDecoder().decode(JSON.self, from: Data(text.utf8))
        let serialized = value.serialized()
        // Valid JSON for Foundation's parser, and the same value when decoded again.
        _ = try JSONSerialization.jsonObject(with: Data(serialized), options: [.fragmentsAllowed])
        #expect(try JSONDecoder().decode(JSON.self, from: Data(serialized)) == value)
    }

    @Test func objectKeysAreSorted() throws {
        let value = JSON.object(["b": .int(1), "a": .int(2), "c": .object(["y": .null, "x": .bool(false)])])
        #expect(String(decoding: value.serialized(), as: UTF8.self) == #"{"a":2,"b":1,"c":{"x":false,"y":null}}"#)
    }

    @Test func mergePatchFollowsRFC7396Examples() throws {
        // RFC 7396 §3 example.
        let target = try JSONDecoder().decode(
            JSON.self,
            from: Data(
                #"{"title":"Goodbye!","author":{"givenName":"John","familyName":"Doe"},"tags":["example","sample"],"content":"This will be unchanged"}"#.utf8))
        let patch = try JSONDecoder().decode(
            JSON.self, from: Data(#"{"title":"Hello!","phoneNumber":"+01-123-456-7890","author":{"familyName":null},"tags":["example"]}"#.utf8))
        let expected = try JSONDecoder().decode(
            JSON.self,
            from: Data(
                #"{"title":"Hello!","author":{"givenName":"John"},"tags":["example"],"content":"This will be unchanged","phoneNumber":"+01-123-456-7890"}"#.utf8
            ))
        #expect(target.mergePatched(with: patch) == expected)
        #expect(JSON.object(["a": .string("b")]).mergePatched(with: .array([.int(1)])) == .array([.int(1)]))
        #expect(JSON.string("x").mergePatched(with: .object(["a": .null])) == .object([:]))
    }
}
