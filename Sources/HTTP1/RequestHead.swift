/// A parsed request head. It owns a copy of the head's bytes; every part of
/// it is a range into `bytes`, so parsing allocates two arrays and no strings.
public struct RequestHead: Sendable {
    public var bytes: [UInt8]
    public var method: Method
    public var methodRange: Range<Int>
    public var target: Range<Int>
    public var targetForm: TargetForm
    /// The path part of the target, without the query (empty in absolute
    /// form without a path).
    public var path: Range<Int>
    /// The path in the form every decision about it is taken on, made once
    /// while parsing (see `CanonicalPath`).
    public var canonicalPath: CanonicalPath
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var minorVersion: Int
    public var fields: [HeaderField]
    public var framing: BodyFraming
    public var keepAlive: Bool
    public var expectContinue: Bool
    /// What its `Connection` fields say (names listed there are hop-by-hop
    /// for this message).
    public var connection: ConnectionOptions

    public subscript(range: Range<Int>) -> ArraySlice<UInt8> { bytes[range] }

    /// The first field of a kind, if any.
    public func first(_ kind: FieldKind) -> HeaderField? {
        fields.first { $0.kind == kind }
    }

    /// Whether a field must not be forwarded: hop-by-hop by RFC 9110 §7.6.1,
    /// or named in this message's `Connection`.
    public func isHopByHop(_ field: HeaderField) -> Bool {
        connection.isHopByHop(field, in: bytes)
    }
}

public enum BodyFraming: Sendable, Equatable {
    case none
    case contentLength(Int)
    case chunked
}

public enum TargetForm: Sendable, Equatable {
    /// `/path?query`
    case origin
    /// `http://authority/path?query`: `authority` and `path` are ranges of the head.
    case absolute(authority: Range<Int>, path: Range<Int>)
}

public enum Method: UInt8, Sendable {
    case get, head, post, put, delete, patch, options, trace, connect, other

    /// Safe methods (RFC 9110 §9.2.1): sending one twice changes nothing.
    public var isSafe: Bool { self == .get || self == .head || self == .options || self == .trace }

    static func classify(_ bytes: ArraySlice<UInt8>) -> Method {
        // Methods are case-sensitive (RFC 9110 §9.1).
        switch bytes.count {
        case 3:
            if bytes.elementsEqual("GET".utf8) { return .get }
            if bytes.elementsEqual("PUT".utf8) { return .put }
        case 4:
            if bytes.elementsEqual("POST".utf8) { return .post }
            if bytes.elementsEqual("HEAD".utf8) { return .head }
        case 5:
            if bytes.elementsEqual("PATCH".utf8) { return .patch }
            if bytes.elementsEqual("TRACE".utf8) { return .trace }
        case 6:
            if bytes.elementsEqual("DELETE".utf8) { return .delete }
        case 7:
            if bytes.elementsEqual("OPTIONS".utf8) { return .options }
            if bytes.elementsEqual("CONNECT".utf8) { return .connect }
        default: break
        }
        return .other
    }
}

/// Fields the server and proxy act on, recognised while parsing so no later
/// step compares names again.
public enum FieldKind: UInt8, Sendable {
    case other
    case host, contentLength, transferEncoding, connection, keepAlive
    case proxyAuthorization, proxyConnection, te, trailer, upgrade
    case expect, authorization, impTokenHeader, requestID, forwardedFor
    /// Agency accounts' sub-merchant (an account's `tier` is added without one).
    case tier
    /// PortOne V2's deduplication key (added to V2 payment calls without one).
    case idempotencyKey

    public var isHopByHop: Bool {
        switch self {
        case .connection, .keepAlive, .proxyAuthorization, .proxyConnection, .te, .trailer, .transferEncoding,
            .upgrade:
            return true
        default:
            return false
        }
    }

    public static func classify(_ name: ArraySlice<UInt8>) -> FieldKind {
        name.withUnsafeBytes { classify($0) }
    }

    public static func classify(_ name: [UInt8]) -> FieldKind {
        name.withUnsafeBytes { classify($0) }
    }

    /// Recognises a field name, ignoring ASCII case. Not generic, so callers in
    /// other modules get this code and not a byte-by-byte walk through witness tables.
    public static func classify(_ name: UnsafeRawBufferPointer) -> FieldKind {
        switch name.count {
        case 2: if name.isLowercased("te") { return .te }
        case 4:
            if name.isLowercased("host") { return .host }
            if name.isLowercased("tier") { return .tier }
        case 6:
            if name.isLowercased("expect") { return .expect }
        case 7:
            if name.isLowercased("trailer") { return .trailer }
            if name.isLowercased("upgrade") { return .upgrade }
        case 10:
            if name.isLowercased("connection") { return .connection }
            if name.isLowercased("keep-alive") { return .keepAlive }
        case 12:
            if name.isLowercased("x-request-id") { return .requestID }
        case 13: if name.isLowercased("authorization") { return .authorization }
        case 14: if name.isLowercased("content-length") { return .contentLength }
        case 15:
            if name.isLowercased("x-forwarded-for") { return .forwardedFor }
            if name.isLowercased("idempotency-key") { return .idempotencyKey }
        case 16:
            if name.isLowercased("x-imptokenheader") { return .impTokenHeader }
            if name.isLowercased("proxy-connection") { return .proxyConnection }
        case 17: if name.isLowercased("transfer-encoding") { return .transferEncoding }
        case 19: if name.isLowercased("proxy-authorization") { return .proxyAuthorization }
        default: break
        }
        return .other
    }
}
