"""``client.pcr_profiles``: a SIM's policy and charging profile (data, voice, SMS, throttling)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from .._converter import decode_model
from .._models import PcrProfile, ServiceState, Throttling, WalletMode
from .._types import NOT_GIVEN, NotGiven
from .._validate import check_given_choice, check_iccid, check_int, path_segment
from ._paths import PATHS

if TYPE_CHECKING:
    from .._transport import Transport

__all__ = ["PcrProfiles"]

SERVICE_STATES: Final = frozenset(s.value for s in ServiceState)
THROTTLINGS: Final = frozenset(t.value for t in Throttling)
WALLET_MODES: Final = frozenset(m.value for m in WalletMode)


class PcrProfiles:
    """``client.pcr_profiles``: read and change what a SIM may do (data, voice, SMS, speed)."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    @staticmethod
    def _path(iccid: str) -> str:
        return PATHS["pcr_profile"].format(iccid=path_segment("iccid", check_iccid("iccid", iccid)))

    async def get(self, iccid: str) -> PcrProfile:
        """The PCR profile of a SIM: ``data`` (state, active throttling), ``voice``,
        ``sms``, ``wallets``, ``wallet_mode``, ``route_policy``.

        Args:
            iccid: The SIM's ICCID, 18 to 22 digits (no Luhn check).

        Raises:
            InvalidArgumentError: ``iccid`` is not 18 to 22 digits (before any request).
            NotFoundError: No such SIM.
            MalformedResponseError: The answer lacks a required field or has
                one of the wrong type (named).
        """
        path = self._path(iccid)
        response = await self._transport.request("GET", path, template=PATHS["pcr_profile"])
        return decode_model(response.data, PcrProfile, method="GET", path=self._transport.url_path(path))

    async def update(
        self,
        iccid: str,
        *,
        data_state: ServiceState | str | NotGiven = NOT_GIVEN,
        active_throttling: Throttling | str | NotGiven = NOT_GIVEN,
        voice_state: ServiceState | str | NotGiven = NOT_GIVEN,
        sms_state: ServiceState | str | NotGiven = NOT_GIVEN,
        wallet_mode: WalletMode | str | NotGiven = NOT_GIVEN,
        route_policy: int | NotGiven | None = NOT_GIVEN,
    ) -> PcrProfile:
        """Change some of a SIM's PCR profile; what is not given stays as it is.

        The API's ``PUT`` replaces the whole profile, so this reads the
        current profile, changes the arguments given, sends it back, and
        returns the profile read again. The ``PUT`` is idempotent and retried
        as a ``GET`` is.

        Read-modify-write: a change another writer makes to the same SIM
        between this read and this write is overwritten (the API has no
        version or ETag to detect it). Keep one writer per SIM: route every
        change of a SIM through one task or worker (a queue keyed by ICCID),
        or pass every field so that nothing read is written back.

        Args:
            iccid: The SIM's ICCID, 18 to 22 digits.
            data_state: ``ENABLED`` or ``DISABLED``: mobile data on or off.
            active_throttling: ``NO_LIMIT`` or a speed cap, ``SPEED_100_KBPS``,
                ``SPEED_500_KBPS``, ``SPEED_1000_KBPS``, ``SPEED_2000_KBPS``,
                ``SPEED_3000_KBPS``, ``SPEED_5000_KBPS``.
            voice_state: ``ENABLED`` or ``DISABLED``.
            sms_state: ``ENABLED`` or ``DISABLED``.
            wallet_mode: ``GROUP`` or ``SIM``: which wallet pays.
            route_policy: A route policy id (>= 0), or ``None`` to send none
                (the profile then has none).

        Returns:
            The profile as the API answers it after the change.

        Raises:
            InvalidArgumentError: A value outside its documented set (named),
                before any request.
            NotFoundError: No such SIM.
            BadRequestError: The API refused the profile.
            MalformedResponseError: The profile read lacks a required field.
        """
        path = self._path(iccid)
        given: dict[str, object] = {}
        for name, value, choices in (
            ("data_state", data_state, SERVICE_STATES),
            ("active_throttling", active_throttling, THROTTLINGS),
            ("voice_state", voice_state, SERVICE_STATES),
            ("sms_state", sms_state, SERVICE_STATES),
            ("wallet_mode", wallet_mode, WALLET_MODES),
        ):
            if not isinstance(value, NotGiven):
                given[name] = check_given_choice(name, value, choices)
        if not isinstance(route_policy, NotGiven):
            given["route_policy"] = None if route_policy is None else check_int("route_policy", route_policy)
        current = await self.get(iccid)
        body: dict[str, Any] = {
            "data": {
                "state": given.get("data_state", current.data.state),
                "active_throttling": given.get("active_throttling", current.data.active_throttling),
            },
            "voice": {"state": given.get("voice_state", current.voice.state)},
            "sms": {"state": given.get("sms_state", current.sms.state)},
            "wallet_mode": given.get("wallet_mode", current.wallet_mode),
        }
        # A route policy the profile has is sent back; None is sent only when asked for.
        policy = given.get("route_policy", current.route_policy)
        if policy is not None or "route_policy" in given:
            body["route_policy"] = policy
        await self._transport.request("PUT", path, json=body, template=PATHS["pcr_profile"])
        return await self.get(iccid)
