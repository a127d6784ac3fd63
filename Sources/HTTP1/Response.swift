/// A response ready for the wire: status, the header lines, and the body.
/// The header block holds complete `Name: value\r\n` lines; framing fields
/// (`Content-Length`, `Connection`) are never in it: the serializer writes them.
public struct Response: Sendable {
    public var status: Int
    /// The upstream's reason phrase, when it sent one.
    public var reason: [UInt8]?
    public var headerBlock: [UInt8]
    public var body: [UInt8]
    /// The length the origin declared: for a response to HEAD, sent as
    /// Content-Length without a body; for a streamed one, the whole length.
    public var declaredLength: Int?
    /// More body follows `body`, written as it arrives: with
    /// `declaredLength` as its Content-Length when known, otherwise chunked
    /// to an HTTP/1.1 client and ended by the close for an HTTP/1.0 one.
    public var streamed = false
    /// An `X-Request-Id` written after the header block by the serializer.
    /// A relayed answer's block is shared with the upstream's answer, so a
    /// line appended to it would copy the whole block first.
    public var requestID: [UInt8]?

    public init(status: Int, reason: [UInt8]? = nil, headerBlock: [UInt8] = [], body: [UInt8] = []) {
        self.status = status
        self.reason = reason
        self.headerBlock = headerBlock
        self.body = body
    }

    @inlinable
    public mutating func addHeader(_ name: StaticString, _ value: String) {
        HeaderBlock.append(name: name, value: value, to: &headerBlock)
    }

    @inlinable
    public mutating func addHeader<C: Collection>(_ name: StaticString, bytes value: C) where C.Element == UInt8 {
        HeaderBlock.append(name: name, value: value, to: &headerBlock)
    }

    /// RFC 9110 §6.4.1: these never carry content.
    public static func statusHasNoBody(_ status: Int) -> Bool {
        (100..<200).contains(status) || status == 204 || status == 304
    }
}

/// Inlinable: called from other modules with their own collections, and
/// unspecialised it looked up generic metadata at run time on every answer.
public enum HeaderBlock {
    @inlinable
    public static func append(name: StaticString, value: String, to block: inout [UInt8]) {
        var value = value
        value.withUTF8 { append(name: name, value: $0, to: &block) }
    }

    @inlinable
    public static func append<C: Collection>(name: StaticString, value: C, to block: inout [UInt8])
    where C.Element == UInt8 {
        name.withUTF8Buffer { block.append(contentsOf: $0) }
        block.append(ASCII.colon)
        block.append(ASCII.space)
        block.append(contentsOf: value)
        block.append(ASCII.cr)
        block.append(ASCII.lf)
    }
}
