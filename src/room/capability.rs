//! Role capabilities (room-policy-03, IANA "MIMI Role Capabilities"; 0xF000–0xFFFF private use).

use std::fmt;

macro_rules! capabilities {
    ($($name:ident = $code:literal,)*) => {
        /// A registered capability. Every name carries the draft's `can` prefix implicitly.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum Capability {
            $($name = $code,)*
        }

        impl Capability {
            /// Every registered capability, in code-point order.
            pub const ALL: &'static [Capability] = &[$(Capability::$name,)*];

            /// The capability with this code point, or `None` for an unregistered or private value.
            pub fn from_code(code: u16) -> Option<Capability> {
                match code {
                    $($code => Some(Capability::$name),)*
                    _ => None,
                }
            }

            pub fn name(self) -> &'static str {
                match self {
                    $(Capability::$name => concat!("can", stringify!($name)),)*
                }
            }
        }
    };
}

capabilities! {
    AddParticipant = 0x0000,
    RemoveParticipant = 0x0001,
    AddOwnClient = 0x0002,
    RemoveOwnClient = 0x0003,
    OpenJoin = 0x0004,
    JoinIfPreauthorized = 0x0005,
    RemoveSelf = 0x0006,
    CreateJoinCode = 0x0007,
    DeleteJoinCode = 0x0008,
    UseJoinCode = 0x0009,
    Ban = 0x000a,
    UnBan = 0x000b,
    Kick = 0x000c,
    Knock = 0x000d,
    AcceptKnock = 0x000e,
    ChangeUserRole = 0x000f,
    ChangeOwnRole = 0x0010,
    CreateSubgroup = 0x0011,
    SendMessage = 0x0100,
    ReceiveMessage = 0x0101,
    CopyMessage = 0x0102,
    ReportAbuse = 0x0103,
    ReplyToMessage = 0x0104,
    ReactToMessage = 0x0105,
    EditReaction = 0x0106,
    DeleteOwnReaction = 0x0107,
    DeleteOtherReaction = 0x0108,
    EditOwnMessage = 0x0109,
    DeleteOwnMessage = 0x010a,
    DeleteOtherMessage = 0x010b,
    StartTopic = 0x010c,
    ReplyInTopic = 0x010d,
    EditOwnTopic = 0x010e,
    EditOtherTopic = 0x010f,
    SendDirectMessage = 0x0110,
    TargetMessage = 0x0111,
    UploadImage = 0x0200,
    UploadAudio = 0x0201,
    UploadVideo = 0x0202,
    UploadAttachment = 0x0203,
    DownloadImage = 0x0204,
    DownloadAudio = 0x0205,
    DownloadVideo = 0x0206,
    DownloadAttachment = 0x0207,
    SendLink = 0x0208,
    SendLinkPreview = 0x0209,
    FollowLink = 0x020a,
    CopyLink = 0x020b,
    ChangeRoomName = 0x0300,
    ChangeRoomDescription = 0x0301,
    ChangeRoomAvatar = 0x0302,
    ChangeRoomSubject = 0x0303,
    ChangeRoomMood = 0x0304,
    ChangeOwnName = 0x0380,
    ChangeOwnPresence = 0x0381,
    ChangeOwnMood = 0x0382,
    ChangeOwnAvatar = 0x0383,
    StartCall = 0x0400,
    JoinCall = 0x0401,
    SendAudio = 0x0402,
    ReceiveAudio = 0x0403,
    SendVideo = 0x0404,
    ReceiveVideo = 0x0405,
    ShareScreen = 0x0406,
    ViewSharedScreen = 0x0407,
    CreateRoom = 0x0500,
    DestroyRoom = 0x0501,
    ChangeRoomMembershipStyle = 0x0502,
    ChangeRoleDefinitions = 0x0503,
    ChangePreauthorizedUserList = 0x0504,
    ChangeOtherPolicyAttribute = 0x0505,
    ChangeMlsOperationalPolicies = 0x0600,
    SendMlsReinitProposal = 0x0601,
    SendMlsUpdateProposal = 0x0602,
    SendMlsPskProposal = 0x0603,
    SendMlsExternalProposal = 0x0604,
    SendMlsExternalCommit = 0x0605,
}

impl Capability {
    pub fn code(self) -> u16 {
        self as u16
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:#06x})", self.name(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_capability_round_trips_through_its_code() {
        for cap in Capability::ALL {
            assert_eq!(Capability::from_code(cap.code()), Some(*cap));
        }
        assert_eq!(Capability::from_code(0xF000), None);
        assert_eq!(Capability::from_code(0x0012), None);
    }

    #[test]
    fn names_carry_the_can_prefix() {
        assert_eq!(Capability::Ban.name(), "canBan");
        assert_eq!(
            Capability::SendMessage.to_string(),
            "canSendMessage (0x0100)"
        );
    }
}
