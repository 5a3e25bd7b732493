from __future__ import annotations

import httpx

from tests.gateway.http.config_api.conftest import assert_error


async def test_crud_defaults_and_escaped_id(api: httpx.AsyncClient) -> None:
    created = await api.post("/cors", json={"method": "get", "path": "/users"})
    assert created.status_code == 201
    assert created.json() == {
        "space": "default", "corsId": "GET%2Fusers", "method": "GET", "path": "/users",
        "allowedOrigins": ["*"], "allowedMethods": ["HEAD", "GET", "POST"],
        "allowedHeaders": ["Origin", "Accept", "Content-Type"], "allowCredentials": False}
    assert (await api.get("/cors/GET%2Fusers")).json() == created.json()
    assert (await api.get("/cors")).json() == {"cors": [created.json()]}

    change = {"method": "GET", "path": "/users", "allowedOrigins": ["https://app.example"], "allowCredentials": True}
    updated = await api.put("/cors/GET%2Fusers", json=change)
    assert updated.status_code == 200
    assert (updated.json()["allowedOrigins"], updated.json()["allowCredentials"]) == (["https://app.example"], True)
    assert_error(await api.put("/cors/GET%2Fusers", json={**change, "path": "/other"}), 400,
                 "Invalid update. 'Path' of existing CORS configuration cannot be updated.")
    assert_error(await api.put("/cors/GET%2Fusers", json={**change, "method": "POST"}), 400,
                 "Invalid update. 'Method' of existing CORS configuration cannot be updated.")

    assert (await api.delete("/cors/GET%2Fusers")).status_code == 204
    assert_error(await api.get("/cors/GET%2Fusers"), 404, "GET%2Fusers")


async def test_nested_path_and_params(api: httpx.AsyncClient) -> None:
    created = await api.post("/cors", json={"method": "POST", "path": "/a/:id/b"})
    assert created.json()["corsId"] == "POST%2Fa%2F:id%2Fb"
    assert (await api.get("/cors/POST%2Fa%2F:id%2Fb")).status_code == 200


async def test_validation_and_conflict(api: httpx.AsyncClient) -> None:
    assert_error(await api.post("/cors", json={"path": "/x"}), 400, "CORS configuration doesn't validate", "method")
    assert_error(await api.post("/cors", json={"method": "GET", "path": "x"}), 400, "path", "absolute")
    assert_error(await api.post("/cors", json={"method": "BREW", "path": "/x"}), 400, "method")
    assert (await api.post("/cors", json={"method": "GET", "path": "/x"})).status_code == 201
    assert_error(await api.post("/cors", json={"method": "GET", "path": "/x"}), 409, "already exists")
    assert_error(await api.put("/cors/GET%2Fnope", json={"method": "GET", "path": "/nope"}), 404)
    assert_error(await api.delete("/cors/GET%2Fnope"), 404, "GET%2Fnope", "not found")
    assert_error(await api.put("/cors/GET%2Fx", json={"method": "GET", "path": "/x", "allowedOrigins": "*"}), 400,
                 "allowedOrigins")


async def test_paths_of_one_method_must_not_conflict(api: httpx.AsyncClient) -> None:
    assert (await api.post("/cors", json={"method": "GET", "path": "/users/:id"})).status_code == 201
    assert_error(await api.post("/cors", json={"method": "GET", "path": "/users/:name"}), 400,
                 "CORS configuration path conflict")
    assert (await api.post("/cors", json={"method": "POST", "path": "/users/:name"})).status_code == 201
