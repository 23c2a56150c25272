"""The control API's routes for the publication method (cloud services or
e-mail): what is in force, switching it, and a test e-mail.

Switching is also reached as the setting ``publication.method`` (see
:mod:`._settings`): both go through :func:`switch_publication`, so both are
checked, stored and audited alike.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from panelfast.control import _text
from panelfast.control._answers import (
    answer,
    error,
    invalid_setting,
    json_answer,
    publication_conflict,
    wants_text,
)
from panelfast.control._schema import (
    API_TYPES,
    PublicationInfo,
    PublicationSwitched,
    RefusedRecipient,
    SmtpReply,
    TestEmailSent,
)
from panelfast.exceptions import ConfigError, MailError, PublicationConflict
from panelfast.local_settings import edit_config_file
from panelfast.publication import EmailSetup, PublicationChange

if TYPE_CHECKING:
    from panelfast.control._app import ControlApp

__all__ = ["publication_routes", "switch_publication"]


def publication_routes(app: ControlApp) -> list[Route]:
    """The routes, over the gateway's publication and e-mail."""
    gateway = app.gateway

    async def publication(request: Request) -> Response:
        info = await asyncio.to_thread(publication_info, app)
        return answer(request, info, API_TYPES["PublicationInfo"], _text.publication_text)

    async def change_publication(request: Request) -> Response:
        try:
            body = await request.json()
            method = body["method"]
        except (ValueError, KeyError, TypeError):
            return error(400, "invalid_request", 'the body must be {"method": ...}')
        outcome = await switch_publication(app, request, method)
        if isinstance(outcome, Response):
            return outcome
        info = await asyncio.to_thread(publication_info, app)
        if wants_text(request):
            return PlainTextResponse(outcome.audit_text() + "\n" + _text.publication_text(info))
        switched = PublicationSwitched(outcome.previous, outcome.method, outcome.changed, info)
        return json_answer(switched, API_TYPES["PublicationSwitched"])

    async def email_test(request: Request) -> Response:
        try:
            delivery = await app.change(request, "email.test", {}, gateway.send_test_email)
        except MailError as exc:
            return error(502, "mail", str(exc), stage=exc.stage, code=exc.code, text=exc.text)
        except ConfigError as exc:
            return invalid_setting(exc)
        email = gateway.settings.email
        assert email is not None  # send_test_email refuses a gateway without one
        sent = TestEmailSent(
            f"{email.host}:{email.smtp_port}",
            SmtpReply(delivery.answer.code, delivery.answer.text),
            delivery.recipients,
            tuple(RefusedRecipient(a, r.code, r.text) for a, r in delivery.refused),
        )
        return json_answer(sent, API_TYPES["TestEmailSent"])

    return [
        Route("/v1/publication", publication, methods=["GET"]),
        Route("/v1/publication", change_publication, methods=["PUT"]),
        Route("/v1/email/test", email_test, methods=["POST"]),
    ]


def publication_info(app: ControlApp) -> PublicationInfo:
    """The method in force, the cloud services' and e-mail's state, the e-mail setup."""
    status = app.gateway.publication_status()
    email = app.gateway.settings.email
    return PublicationInfo(
        status.method,
        status.cloud_services,
        EmailSetup.of(email) if email is not None else None,
        status.email,
    )


async def switch_publication(
    app: ControlApp, request: Request, method: object
) -> PublicationChange | Response:
    """Switch the method: checked, written into the file, in force at once, audited."""
    gateway = app.gateway

    def store(checked: str) -> None:
        current = gateway.remote.current
        edit_config_file(
            app.config_path,
            "publication.method",
            checked,
            applied_version=current.version if current else None,
            cloud_on=gateway.session.connect_requested,
        )

    async def do() -> PublicationChange:
        return await gateway.change_publication_method(method, store=store)

    try:
        return await app.change(request, "publication.method", {"method": method}, do)
    except PublicationConflict as exc:
        return publication_conflict(exc)
    except ConfigError as exc:
        return invalid_setting(exc)
