/* The same run_stage as a CPython extension (METH_FASTCALL): what the call costs without ctypes. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "stage_runner.c"

/* run_stage(api, n, calls, payload: bytes, fuel, fuel_used, result) -> completed count; addresses as ints */
static PyObject *py_run_stage(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 7 || !PyBytes_CheckExact(args[3])) {
        PyErr_SetString(PyExc_TypeError, "run_stage(api, n, calls, payload: bytes, fuel, fuel_used, result)");
        return NULL;
    }
    void *api = PyLong_AsVoidPtr(args[0]);
    long n = PyLong_AsLong(args[1]);
    void *calls = PyLong_AsVoidPtr(args[2]);
    unsigned long long fuel = PyLong_AsUnsignedLongLong(args[4]);
    void *fuel_used = PyLong_AsVoidPtr(args[5]);
    void *out = PyLong_AsVoidPtr(args[6]);
    if (PyErr_Occurred()) return NULL;
    int done = run_stage(api, (int)n, calls, (const uint8_t *)PyBytes_AS_STRING(args[3]),
                         (uint64_t)PyBytes_GET_SIZE(args[3]), fuel, fuel_used, out);
    return PyLong_FromLong(done);
}

static PyMethodDef methods[] = {
    {"run_stage", (PyCFunction)(void (*)(void))py_run_stage, METH_FASTCALL, "one stage's plugins in one call"},
    {NULL, NULL, 0, NULL},
};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "stage_ext", NULL, -1, methods, NULL, NULL, NULL, NULL};
PyMODINIT_FUNC PyInit_stage_ext(void) { return PyModule_Create(&mod); }
